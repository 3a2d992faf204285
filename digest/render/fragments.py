"""Rendered templates cut at their placeholders, filled per reader; the text also kept as its
quoted-printable encoding line by line, so per reader only the lines with its values are encoded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter

from markupsafe import escape

from digest.render.mime import qp, qp_lines


# Placeholders for the per-reader parts of the edition's pre-rendered fragments and layouts.
# Stored text never contains NUL (ingest strips control characters), so feed text cannot forge
# one, and a template only ever sees them as whole values.
def slot(name: str) -> str:
    return f"\x00{name}\x00"


SLOT = re.compile("\x00([a-z0-9_]+)\x00")
# Slots whose values recur from reader to reader (an item's position, the reason it was
# picked), so the encoding of lines holding only them is kept, for up to _MEMO_SIZE values.
_RECURRING = frozenset({"number", "why"})
_MEMO_SIZE = 1024

Getter = Callable[[Mapping[str, bytes]], tuple[bytes, ...]]


def _getter(slots: tuple[str, ...]) -> Getter:
    """The values of `slots` from a mapping, always as a tuple (itemgetter gives a bare value for
    a single name)."""
    if len(slots) > 1:
        return itemgetter(*slots)
    if slots:
        only = slots[0]
        return lambda values: (values[only],)
    return lambda values: ()


@dataclass(frozen=True, slots=True)
class SlotTemplate:
    """A rendered template as UTF-8 cut at its placeholders: static pieces at even positions, a
    slot at every odd one. Filling is a list copy, one slice assignment and a join, all in C; a
    %-format was slower (% walks its format a character at a time), and strings holding an
    emoji take four bytes a character where UTF-8 takes one for most of the page."""

    pieces: list[bytes]
    slots: tuple[str, ...]
    values: Getter

    @classmethod
    def of(cls, rendered: str) -> SlotTemplate:
        parts = SLOT.split(rendered)
        slots = tuple(parts[1::2])
        pieces = [b""] * len(parts)
        pieces[::2] = [part.encode("utf-8") for part in parts[::2]]
        return cls(pieces, slots, _getter(slots))

    def fill(self, values: Mapping[str, bytes]) -> bytes:
        out = self.pieces.copy()
        out[1::2] = self.values(values)
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class _Run:
    """Consecutive lines of a text template that hold placeholders: filled and encoded per
    reader. `memo` keeps the encodings of a run whose values recur (shared by the runs of
    every fragment with the same lines, such as each paper's "Why:" line)."""

    line: SlotTemplate
    memo: dict[tuple[bytes, ...], bytes] | None

    def encode(self, values: Mapping[str, bytes]) -> bytes:
        memo = self.memo
        if memo is None:
            return qp_lines(self.line.fill(values))
        key = self.line.values(values)
        encoded = memo.get(key)
        if encoded is None:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            encoded = memo[key] = qp_lines(self.line.fill(values))
        return encoded


@dataclass(frozen=True, slots=True)
class SlotText:
    """A text template, plain and quoted-printable.

    Quoted-printable encodes each line on its own (soft breaks, trailing whitespace and a lone
    dot only look within the line), so the lines without placeholders are encoded here, once per
    edition, and per reader only the runs of lines holding the reader's values are. A block slot
    (a section's items, alone on its line) takes its items' own encodings as they are.
    """

    plain: SlotTemplate
    # Encoded static lines at even positions, a run or block slot's encoding at every odd one.
    encoded: list[bytes]
    runs: tuple[_Run | str, ...]

    @classmethod
    def of(
        cls,
        rendered: str,
        blocks: frozenset[str] = frozenset(),
        *,
        ends_line: bool = False,
        memos: dict[tuple[bytes, ...], dict[tuple[bytes, ...], bytes]] | None = None,
    ) -> SlotText:
        """`ends_line`: the text is always followed by a line end where it is used, so its
        encoding includes one (and a trailing blank on its last line is not the body's end).
        `memos`: the memos of runs of recurring values, by the run's text, to share."""
        encoded: list[bytes] = []
        runs: list[_Run | str] = []
        static: list[str] = []
        run: list[str] = []

        def end_static() -> None:
            encoded.append(qp("".join(static)))
            static.clear()

        def end_run() -> None:
            if run:
                line = SlotTemplate.of("".join(run))
                memo = None
                if memos is not None and _RECURRING.issuperset(line.slots):
                    memo = memos.setdefault(tuple(line.pieces), {})
                end_static()
                runs.append(_Run(line, memo))
                encoded.append(b"")
                run.clear()

        lines = (rendered + "\n" if ends_line else rendered).split("\n")
        for n, line in enumerate(lines):
            if n + 1 < len(lines):
                line += "\n"
            names = SLOT.findall(line)
            if not names:
                end_run()
                static.append(line)
            elif len(names) == 1 and names[0] in blocks and line == slot(names[0]) + "\n":
                end_run()
                end_static()
                runs.append(names[0])
                encoded.append(b"")
            else:
                run.append(line)
        end_run()
        end_static()
        return cls(SlotTemplate.of(rendered), encoded, tuple(runs))

    def encode(self, values: Mapping[str, bytes], blocks: Mapping[str, bytes]) -> bytes:
        """qp(plain.fill(values)), given each block slot's encoding in `blocks`."""
        out = self.encoded.copy()
        out[1::2] = [
            run.encode(values) if type(run) is _Run else blocks[run]  # type: ignore[index]
            for run in self.runs
        ]
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class Fragment:
    html: SlotTemplate
    text: SlotText


def escaped(value: str, utf8: bytes) -> bytes:
    """markupsafe.escape(value) in UTF-8, given value in UTF-8, without escape's cost for the
    usual value (a URL with a token, a reason) that has nothing to escape: then it is `utf8`
    itself. Five substring tests of the str beat one regex search (and `bytes in bytes` first
    tries the needle as an int, raising and clearing an exception)."""
    if "&" in value or "<" in value or ">" in value or '"' in value or "'" in value:
        return str(escape(value)).encode("utf-8")
    return utf8
