"""Digest and confirmation emails: Jinja2 rendering and MIME assembly. Pure: no SMTP, no DB.

CSS is inlined once, when a template is loaded (css-inline), not per message. Each paper's
static fragment is rendered once per edition; per subscriber only the assembly happens.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
import numpy as np
from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)
from markupsafe import Markup, escape

_BLOCK_TAG = re.compile(r"(\{%.*?%\})", re.S)
_COMMENTED_TAG = re.compile(r"<!--(\{%.*?%\})-->", re.S)
MAX_AUTHORS = 3


class InliningLoader(BaseLoader):
    """Loads templates from disk, inlining templates/email/digest.css into email HTML once.

    Jinja block tags are hidden in HTML comments while the HTML is parsed, so the parser's
    table repair cannot move them; block tags must therefore not sit inside attribute values.
    """

    def __init__(self, root: Path) -> None:
        self._files = FileSystemLoader(str(root))
        css_path = root / "email" / "digest.css"
        css = css_path.read_text(encoding="utf-8") if css_path.exists() else ""
        self._inliner = css_inline.CSSInliner(extra_css=css, keep_style_tags=True)
        self._css = css

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Any]:
        source, filename, uptodate = self._files.get_source(environment, template)
        if template.startswith("email/") and template.endswith(".html"):
            shielded = _BLOCK_TAG.sub(r"<!--\1-->", source)
            if shielded.lstrip().lower().startswith(("<!doctype", "<html")):
                inlined = self._inliner.inline(shielded)
                if not inlined.lstrip().lower().startswith("<!doctype"):
                    inlined = "<!DOCTYPE html>\n" + inlined
            else:
                inlined = css_inline.inline_fragment(shielded, self._css)
            source = _COMMENTED_TAG.sub(r"\1", inlined)
        return source, filename, uptodate


def make_environment(templates_dir: Path) -> Environment:
    """HTML templates autoescaped whatever their name; strict about missing variables."""
    if not templates_dir.is_dir():
        raise TemplateNotFound(str(templates_dir))
    return Environment(
        loader=InliningLoader(templates_dir),
        # Everything is escaped (default=True, so even a name like digest.html.j2 is: the trap
        # of RELIABILITY.md finding 8) except plain-text parts, where &amp; would be a bug.
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml"),
            disabled_extensions=("txt",),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,
        auto_reload=False,
    )


@dataclass(frozen=True, slots=True)
class PaperView:
    """What an email shows of one paper; built once per edition."""

    key: str
    title: str
    url: str
    authors_line: str
    tldr: str
    categories: tuple[str, ...] = ()
    pdf_url: str | None = None
    code_url: str | None = None
    upvotes: int | None = None
    github_stars: int | None = None

    @property
    def meta(self) -> str:
        """Authors, categories, upvotes and stars, whichever are known, on one line."""
        parts = [self.authors_line, ", ".join(self.categories)]
        if self.upvotes:
            parts.append(f"▲ {self.upvotes} upvote{'s' if self.upvotes != 1 else ''}")
        if self.github_stars:
            parts.append(
                f"★ {self.github_stars} GitHub star{'s' if self.github_stars != 1 else ''}"
            )
        return " · ".join(part for part in parts if part)


def authors_line(authors: Sequence[str]) -> str:
    if not authors:
        return ""
    if len(authors) <= MAX_AUTHORS:
        return ", ".join(authors)
    return ", ".join(authors[:MAX_AUTHORS]) + " et al."


def tldr(abstract: str, ai_summary: str | None, *, max_chars: int) -> str:
    """The source's AI summary if any, else the abstract's first sentences cut on a word."""
    text = (ai_summary or abstract or "").strip()
    if len(text) <= max_chars:
        return text
    sentences = re.split(r"(?<=[.!?])\s+", text)
    out = ""
    for sentence in sentences:
        if len(out) + len(sentence) + 1 > max_chars:
            break
        out = f"{out} {sentence}".strip()
    if out:
        return out
    cut = text[:max_chars].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def safe_url(url: str | None) -> str | None:
    """Only http(s) links reach an email; javascript:, data: and the rest are dropped."""
    if not url:
        return None
    return url if re.match(r"^https?://[^\s<>\"']+$", url) else None


def paper_view(paper: Any, *, max_tldr_chars: int) -> PaperView:
    """A PaperView from a stored Paper (or anything with the same attributes)."""
    arxiv_id = getattr(paper, "arxiv_id", None)
    url = safe_url(paper.url) or (f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else "")
    pdf = safe_url(paper.pdf_url) or (f"https://arxiv.org/pdf/{arxiv_id}" if arxiv_id else None)
    return PaperView(
        key=paper.key,
        title=paper.title,
        url=url,
        authors_line=authors_line(paper.authors or []),
        tldr=tldr(paper.abstract, paper.ai_summary, max_chars=max_tldr_chars),
        categories=tuple((paper.categories or [])[:4]),
        pdf_url=pdf,
        code_url=safe_url(paper.code_url),
        upvotes=paper.upvotes,
        github_stars=paper.github_stars,
    )


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One paper in one subscriber's digest: the shared view plus this reader's reason and links."""

    paper: PaperView
    why: str
    up_url: str
    down_url: str
    section: str = "For you"


@dataclass(frozen=True, slots=True)
class DigestLinks:
    manage: str
    unsubscribe: str
    view: str


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    subject: str
    html: str
    text: str
    # (paper key, reason, kind) in the order shown; stored with the delivery for replays.
    picks: tuple[tuple[str, str, str], ...] = ()
    # The text as the pieces it was joined from, so build_message can reuse the encodings of
    # the edition's static pieces (see _Static).
    text_segments: tuple[str, ...] = field(default=(), repr=False, compare=False)


# Placeholders for the per-reader parts of the edition's pre-rendered fragments and layouts.
# Stored text never contains NUL (ingest strips control characters), so feed text cannot forge
# one, and a template only ever sees them as whole values.
def _slot(name: str) -> str:
    return f"\x00{name}\x00"


_SLOT = re.compile("(\x00[a-z0-9_]+\x00)")
_ITEM_SLOTS = {name: Markup(_slot(name)) for name in ("why", "up_url", "down_url", "number")}
_WHY, _UP_URL, _DOWN_URL, _NUMBER = (_slot(n) for n in ("why", "up_url", "down_url", "number"))


class _Static(str):
    """Text of an edition's pre-rendered fragment or layout, the same in every message it goes
    into, so its quoted-printable encoding is made once, on first use.

    A str subclass so that a digest's pieces join with str.join as they are; str subclasses
    cannot have __slots__, hence the instance dict.
    """

    _qp: tuple[str, bytes, str] | tuple[()] | None

    def __new__(cls, text: str) -> _Static:
        piece = super().__new__(cls, text)
        piece._qp = None
        return piece

    def qp_cut(self) -> tuple[str, bytes, str] | None:
        """(first line, the whole lines after it quoted-printable, the unfinished last line);
        None when there are too few whole lines to be worth it."""
        cut = self._qp
        if cut is None:
            first = self.find("\n")
            last = self.rfind("\n")
            if last - first < _MIN_REUSED:
                cut = self._qp = ()
            else:
                cut = self._qp = (
                    self[: first + 1],
                    _qp(self[first + 1 : last + 1]),
                    self[last + 1 :],
                )
        return cut or None


_BLANK_LINE = _Static("\n\n")
# Below this many characters a piece's own encoding saves less than the extra step of splicing
# it in costs, so it is encoded along with the reader's values around it.
_MIN_REUSED = 200


def _parts(rendered: str) -> list[str]:
    """A rendered template cut at its placeholders: static pieces (_Static) and slot names."""
    return [
        _Static(part) if n % 2 == 0 else part
        for n, part in enumerate(_SLOT.split(rendered))
        if part
    ]


def _fill(parts: list[str], values: Mapping[str, str | list[str]], out: list[str]) -> None:
    """Appends the pieces of `parts` to `out` with each slot replaced by its value (a string or
    a list of pieces)."""
    for part in parts:
        if type(part) is _Static:
            out.append(part)
            continue
        value = values.get(part, part)
        if type(value) is list:
            out.extend(value)
        else:
            out.append(value)


@dataclass
class EditionRenderer:
    """Renders one edition's digests.

    Each paper's HTML and text fragment, and the page layout for each shape of digest (with or
    without interests, a shortfall note, the sections present), is rendered once with
    placeholders; per subscriber only escaping the reader's values and joining strings remain.
    """

    env: Environment
    edition_date: date
    postal_address: str
    _fragments: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    _layouts: dict[tuple[Any, ...], tuple[list[str], list[str]]] = field(default_factory=dict)

    def fragment(self, paper: PaperView) -> tuple[list[str], list[str]]:
        cached = self._fragments.get(paper.key)
        if cached is None:
            html = self.env.get_template("email/_paper.html").render(paper=paper, **_ITEM_SLOTS)
            text = self.env.get_template("email/_paper.txt").render(paper=paper, **_ITEM_SLOTS)
            cached = (_parts(html), _parts(text))
            self._fragments[paper.key] = cached
        return cached

    def _layout(self, shape: tuple[Any, ...]) -> tuple[list[str], list[str]]:
        cached = self._layouts.get(shape)
        if cached is None:
            has_interests, has_shortfall, is_test, titles = shape
            slots = {
                name: Markup(_slot(name))
                for name in (
                    "subject",
                    "headline",
                    "interests",
                    "shortfall",
                    "manage",
                    "unsubscribe",
                    "view",
                )
            }
            context = {
                "subject": slots["subject"],
                "edition_label": self.edition_date.strftime("%A %d %B %Y"),
                "headline": slots["headline"],
                "interests": slots["interests"] if has_interests else "",
                "shortfall": slots["shortfall"] if has_shortfall else "",
                "links": DigestLinks(slots["manage"], slots["unsubscribe"], slots["view"]),
                "postal_address": self.postal_address,
                "is_test": is_test,
            }
            sections = [
                {"title": title, "entries": [Markup(_slot(f"section{n}"))]}
                for n, title in enumerate(titles)
            ]
            html = self.env.get_template("email/digest.html").render(context, sections=sections)
            text = self.env.get_template("email/digest.txt").render(context, sections=sections)
            cached = (_parts(html), _parts(text))
            self._layouts[shape] = cached
        return cached

    def render(
        self,
        *,
        items: Sequence[DigestItem],
        interests: str,
        links: DigestLinks,
        shortfall: str = "",
        is_test: bool = False,
    ) -> RenderedDigest:
        matched = sum(1 for i in items if i.section == "For you")
        count = len(items)
        headline = (
            f"{matched} new paper{'s' if matched != 1 else ''} for you"
            if matched
            else f"{count} trending paper{'s' if count != 1 else ''} today"
        )
        subject = f"{'[TEST] ' if is_test else ''}Trending papers, {self.edition_date:%d %b %Y}: "
        subject += f"{count} paper{'s' if count != 1 else ''}"
        titles: list[str] = []
        html_sections: list[list[str]] = []
        text_sections: list[list[str]] = []
        for number, item in enumerate(items, start=1):
            title = "Trending today" if item.section == "Trending" else "For you"
            if not titles or titles[-1] != title:
                titles.append(title)
                html_sections.append([])
                text_sections.append([])
            elif text_sections[-1]:
                text_sections[-1].append(_BLANK_LINE)
            html_parts, text_parts = self.fragment(item.paper)
            _fill(
                html_parts,
                {
                    _WHY: escape(item.why),
                    _UP_URL: escape(item.up_url),
                    _DOWN_URL: escape(item.down_url),
                },
                html_sections[-1],
            )
            _fill(
                text_parts,
                {
                    _NUMBER: str(number),
                    _WHY: item.why,
                    _UP_URL: item.up_url,
                    _DOWN_URL: item.down_url,
                },
                text_sections[-1],
            )
        short = _short_interests(interests)
        html_layout, text_layout = self._layout(
            (bool(short), bool(shortfall), is_test, tuple(titles))
        )
        # Every value below is escaped here, and every fragment came from an autoescaped
        # template: the joined page is safe HTML by construction.
        html_values: dict[str, str | list[str]] = {
            _slot("subject"): escape(subject),
            _slot("headline"): escape(headline),
            _slot("interests"): escape(short),
            _slot("shortfall"): escape(shortfall),
            _slot("manage"): escape(links.manage),
            _slot("unsubscribe"): escape(links.unsubscribe),
            _slot("view"): escape(links.view),
        }
        text_values: dict[str, str | list[str]] = {
            _slot("subject"): subject,
            _slot("headline"): headline,
            _slot("interests"): short,
            _slot("shortfall"): shortfall,
            _slot("manage"): links.manage,
            _slot("unsubscribe"): links.unsubscribe,
            _slot("view"): links.view,
        }
        for n, (html_items, text_items) in enumerate(
            zip(html_sections, text_sections, strict=True)
        ):
            html_values[_slot(f"section{n}")] = html_items
            text_values[_slot(f"section{n}")] = text_items
        html_segments: list[str] = []
        text_segments: list[str] = []
        _fill(html_layout, html_values, html_segments)
        _fill(text_layout, text_values, text_segments)
        return RenderedDigest(
            subject=subject,
            html="".join(html_segments),
            text="".join(text_segments),
            text_segments=tuple(text_segments),
        )


def _short_interests(interests: str, limit: int = 120) -> str:
    text = " ".join(interests.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def message_id(*, edition_id: int, subscriber_id: int, domain: str, secret: str) -> str:
    """Deterministic per (edition, subscriber): a resend after a crash carries the same id."""
    mac = _keyed_sha256(secret).copy()
    mac.update(f"{edition_id}.{subscriber_id}".encode())
    tag = mac.hexdigest()[:8]
    return f"<edition-{edition_id}.sub-{subscriber_id}.{tag}@{domain}>"


@lru_cache(maxsize=8)
def _keyed_sha256(secret: str) -> hmac.HMAC:
    # Copied for each message: keying an HMAC costs more than the message's own hashing.
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def _date_header(value: datetime) -> str:
    # Aware datetimes at the same instant compare equal whatever their offset, and the header
    # shows the offset: both make the key.
    return _formatted_date(value, value.utcoffset())


@lru_cache(maxsize=8)
def _formatted_date(value: datetime, offset: Any) -> str:
    # An edition's messages share one send time.
    return format_datetime(value)


def _header_text(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError("header value contains a line break")
    if value.isascii():
        return value
    return Header(value, "utf-8").encode()


# A bare dot-atom address, which parseaddr and formataddr hand back unchanged (tested); every
# subscriber's To is one, and parsing it costs more than the rest of the headers together.
_BARE_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
)


def _address(value: str) -> str:
    if _BARE_ADDRESS.fullmatch(value):
        return value
    return _parsed_address(value)


@lru_cache(maxsize=64)
def _parsed_address(value: str) -> str:
    name, address = parseaddr(value)
    if not address or any(c in value for c in "\r\n\0"):
        raise ValueError(f"not a valid address: {value!r}")
    return formataddr((name, address), charset="utf-8")


def _base64(body: str) -> bytes:
    encoded = binascii.b2a_base64(body.replace("\r\n", "\n").encode("utf-8"), newline=False)
    # Cutting 76-character lines one slice at a time cost more than the encoding itself; as
    # rows of a byte matrix, CRLF is one column assignment.
    whole = len(encoded) // 76
    rows = np.empty((whole, 78), dtype=np.uint8)
    rows[:, :76] = np.frombuffer(encoded, dtype=np.uint8, count=whole * 76).reshape(whole, 76)
    rows[:, 76:] = _CRLF
    body = rows.tobytes()
    rest = encoded[whole * 76 :]
    if rest or not whole:
        body += rest + b"\r\n"
    return body


_CRLF = np.frombuffer(b"\r\n", dtype=np.uint8)


def _qp(body: str) -> bytes:
    data = body.replace("\r\n", "\n").encode("utf-8")
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def _qp_pieces(segments: Sequence[str]) -> bytes:
    """_qp of the joined segments, reusing each _Static's encoding made once per edition.

    Quoted-printable encodes each line on its own (soft breaks, trailing whitespace and a lone
    dot only look within the line), so a static piece's whole lines encode the same in every
    message; only the lines holding per-reader strings are encoded here. Byte for byte _qp's.
    """
    out: list[bytes] = []
    line: list[str] = []
    for segment in segments:
        if type(segment) is _Static:
            cut = segment.qp_cut()
            if cut is not None:
                first, lines, last = cut
                line.append(first)
                out.append(_qp("".join(line)))
                out.append(lines)
                line = [last]
                continue
        line.append(segment)
    out.append(_qp("".join(line)))
    return b"".join(out)


def _text_body(text: str, segments: Sequence[str]) -> bytes:
    # Without a CR the pieces need no CRLF normalisation, which could join a CR ending one piece
    # to the LF starting the next; that rare case takes the one-pass encoder.
    return _qp_pieces(segments) if segments and "\r" not in text else _qp(text)


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
    date: datetime,
    headers: Mapping[str, str] = {},
    text_segments: Sequence[str] = (),
) -> bytes:
    """RFC 5322 bytes: multipart/alternative (text first, then HTML), bodies encoded once.

    Assembled directly rather than through email.message, which costs ~7 ms a message; the
    result parses back identically with email.message_from_bytes(policy=default) (tested).
    `text_segments`, when given, must join to exactly `text` (RenderedDigest carries both):
    the edition's static pieces among them are encoded once.
    """
    boundary = "=_digest_" + hashlib.sha256(message_id.encode()).hexdigest()[:24]
    lines = [
        f"From: {_address(sender)}",
        f"To: {_address(to)}",
        f"Subject: {_header_text(subject)}",
        f"Date: {_date_header(date)}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
    ]
    for name, value in headers.items():
        lines.append(f"{name}: {_header_text(value)}")
    text_body = _text_body(text, text_segments)
    if html is None:
        lines += [
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + text_body
    text_part = (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + text_body
    )
    lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    # HTML goes base64: inline styles are full of "=", which quoted-printable triples, and
    # encoding it is ~10x cheaper. The text part stays quoted-printable, readable as sent.
    html_part = (
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + _base64(html)
    )
    marker = f"--{boundary}".encode()
    return b"".join(
        [
            ("\r\n".join(lines) + "\r\n\r\n").encode("ascii"),
            marker + b"\r\n" + text_part + b"\r\n",
            marker + b"\r\n" + html_part + b"\r\n",
            marker + b"--\r\n",
        ]
    )
