"""How every command prints data: a table that fits the terminal, plain text in a pipe, or JSON.

On a terminal a table keeps its id, date and number cells whole and folds only free text; when
even those do not fit (an 80-column window, many columns) each row is printed as a block of
"name  value" lines instead. When stdout is not a terminal the same data is printed as plain
aligned text (no box characters, nothing cut) so that grep, sort and cut work on it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

# Free text narrower than this is not worth folding: drop to the vertical layout instead.
MIN_TEXT_WIDTH = 16


@dataclass(frozen=True)
class Col:
    """One column: `text` columns (titles, interests, errors) may fold; the rest never break."""

    header: str
    text: bool = False
    numeric: bool = False


def console(*, stderr: bool = False) -> Console:
    # soft_wrap off and no highlighting: numbers and dates are data, not decoration.
    return Console(stderr=stderr, highlight=False)


def minute(value: datetime | str | None) -> str:
    """A timestamp to the minute ("2026-12-06 08:02 UTC"); "-" when there is none."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is not None:  # stored times are UTC; naive ones come back from SQLite
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def percent(part: float, whole: float | None = None, *, digits: int = 1) -> str:
    """`part` as a share of `whole` (or a 0-1 rate when whole is None), e.g. "2.5 %"."""
    rate = part if whole is None else (part / whole if whole else 0.0)
    return f"{rate * 100:.{digits}f} %"


def counts(mapping: dict[str, int], order: Iterable[str] = ()) -> str:
    """{"sent": 3, "failed": 1} as "3 sent, 1 failed" (known states first); "none" if empty."""
    ordered = [k for k in order if mapping.get(k)] + sorted(k for k in mapping if k not in order)
    parts = [f"{mapping[k]} {k}" for k in ordered if mapping.get(k)]
    return ", ".join(parts) or "none"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return minute(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    return " ".join(str(value).split()) if "\n" in str(value) else str(value)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")


def plain_table(cols: Sequence[Col], rows: Sequence[Sequence[Any]]) -> str:
    """Aligned columns separated by two spaces, a header line, nothing cut, no trailing blanks."""
    cells = [[c.header for c in cols], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    lines = []
    for row in cells:
        parts = [
            (v.rjust(w) if c.numeric else v.ljust(w))
            for c, v, w in zip(cols, row, widths, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def plain_record(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {_cell(v)}".rstrip() for k, v in pairs)


def _fits(cols: Sequence[Col], cells: list[list[str]], width: int) -> bool:
    needed = 3 * (len(cols) - 1)  # a divider and a padding space each side, edges unpadded
    for i, col in enumerate(cols):
        longest = max([len(col.header), *(len(r[i]) for r in cells)])
        needed += min(longest, MIN_TEXT_WIDTH) if col.text else longest
    return needed <= width


def _vertical(cols: Sequence[Col], cells: list[list[str]]) -> list[Table]:
    blocks = []
    for row in cells:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for col, value in zip(cols, row, strict=True):
            grid.add_row(col.header, value)
        blocks.append(grid)
    return blocks


def print_table(
    cols: Sequence[Col], rows: Sequence[Sequence[Any]], *, out: Console | None = None
) -> None:
    """Print rows under `cols`: a fitted table, a vertical layout, or plain text in a pipe."""
    out = out or console()
    cells = [[_cell(v) for v in row] for row in rows]
    if not out.is_terminal:
        out.file.write(plain_table(cols, rows) + "\n")
        return
    if not cells:
        out.print("(none)")
        return
    if not _fits(cols, cells, out.width):
        for i, block in enumerate(_vertical(cols, cells)):
            if i:
                out.print()
            out.print(block)
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for i, col in enumerate(cols):
        longest = max([len(col.header), *(len(r[i]) for r in cells)])
        if col.text:
            table.add_column(col.header, overflow="fold", min_width=min(longest, MIN_TEXT_WIDTH))
        else:
            table.add_column(
                col.header,
                no_wrap=True,
                min_width=longest,
                justify="right" if col.numeric else "left",
            )
    for row in cells:
        table.add_row(*row)
    out.print(table)


def print_record(pairs: Sequence[tuple[str, Any]], *, out: Console | None = None) -> None:
    """One thing's fields as "name  value" lines; long values fold on a terminal, never cut."""
    out = out or console()
    if not out.is_terminal:
        out.file.write(plain_record(pairs) + "\n")
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in pairs:
        grid.add_row(key, _cell(value))
    out.print(grid)
