"""Shared RSS/Atom plumbing for the XML parsers: safe feedparser call and field helpers.

Refuses documents that declare XML entities (billion laughs, external entities) before parsing,
and turns feedparser's many shapes (struct_time dates, detail dicts, bozo flags) into plain values.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import feedparser

from digest.sources.text import clean_text

MAX_ITEMS = 2000
# A DTD internal subset that declares entities is never needed by a feed and is how billion-laughs
# and XXE documents work; refusing it up front also saves expat's ~2 s of amplification CPU.
_ENTITY_MARKERS = tuple(
    marker.encode(encoding)
    for marker in ("<!ENTITY", "<!entity")
    for encoding in ("ascii", "utf-16-le", "utf-16-be")
)
_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*(?:<!doctype\s+html|<html[\s>])", re.I | re.S)


class FeedDocument:
    """A parsed feed: entries, feed-level fields, and problems worth recording."""

    def __init__(self, parsed: Any, warnings: tuple[str, ...]) -> None:
        self.parsed = parsed
        self.entries: list[Any] = list(parsed.entries)
        self.feed: Mapping[str, Any] = parsed.feed
        self.version: str = parsed.get("version", "") or ""
        self.warnings = warnings


def one_line(message: object, limit: int = 300) -> str:
    """A message squeezed onto one line and cut to `limit` characters, for FeedState."""
    text = clean_text(str(message), html_markup=False) or type(message).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def prescreen(data: bytes) -> str | None:
    """Why `data` must not reach an XML parser (empty, declares entities, HTML), or None."""
    if not data or not data.strip():
        return "empty body"
    if any(marker in data for marker in _ENTITY_MARKERS):
        return "refused: document declares XML entities (entity expansion/XXE risk)"
    if _HTML_START.match(data[:65536]):
        return "not a feed: an HTML page was served"
    return None


def load_feed(data: bytes) -> tuple[FeedDocument | None, str | None]:
    """Parse RSS/Atom bytes with the text-preserving feedparser settings; (document, error)."""
    refusal = prescreen(data)
    if refusal:
        return None, refusal
    try:
        # sanitize_html/resolve_relative_uris off: the sanitiser corrupts TeX like `$a<b$`
        # (RELIABILITY.md §4); we store plain text and escape at render time instead.
        parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    except Exception as exc:  # feedparser swallows almost everything; belt and braces
        return None, f"feed parser crashed: {one_line(exc)}"
    warnings: tuple[str, ...] = ()
    if parsed.get("bozo"):
        warnings = (f"malformed feed: {one_line(parsed.get('bozo_exception'))}",)
    version = parsed.get("version", "") or ""
    if not parsed.entries:
        if not version:
            reason = warnings[0] if warnings else "not an RSS/Atom feed"
            return None, reason if reason.startswith("not") else f"not a feed ({reason})"
        if warnings:
            return None, warnings[0]
    return FeedDocument(parsed, warnings), None


def text_of(entry: Mapping[str, Any], name: str, *, html_markup: bool | None = None) -> str:
    """Clean text of a field; HTML decoding follows the field's declared type unless forced."""
    value = entry.get(name)
    if value is None:
        return ""
    if html_markup is None:
        detail = entry.get(f"{name}_detail") or {}
        html_markup = "html" in str(detail.get("type", "text/html"))
    return clean_text(value, html_markup=html_markup)


def entry_datetime(entry: Mapping[str, Any], *names: str) -> datetime | None:
    """The first parseable date of `names` (feedparser *_parsed struct_time, UTC) as aware UTC."""
    for name in names or ("published", "updated"):
        parsed = entry.get(f"{name}_parsed")
        if parsed:
            try:
                return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
            except (OverflowError, ValueError, TypeError):
                continue
    return None


def split_authors(names: Iterable[object], *, split: bool = False) -> tuple[str, ...]:
    """Clean author names; `split` breaks one "A, B and C" string (arXiv dc:creator) apart."""
    found: list[str] = []
    for raw in names:
        name = clean_text(raw)
        if not name:
            continue
        if split:
            found.extend(re.split(r",\s*|\s+and\s+", name))
        else:
            found.append(name)
    return unique(n.strip() for n in found if n.strip())


def entry_authors(entry: Mapping[str, Any], *, split: bool = False) -> tuple[str, ...]:
    """Author names of a feedparser entry (see split_authors for `split`)."""
    raw = [a.get("name") if isinstance(a, Mapping) else a for a in entry.get("authors") or ()]
    if not any(raw) and entry.get("author"):
        raw = [entry.get("author")]
    return split_authors(raw, split=split)


def entry_categories(entry: Mapping[str, Any]) -> tuple[str, ...]:
    """Category terms in feed order, deduplicated."""
    terms = (clean_text(tag.get("term"), html_markup=False) for tag in entry.get("tags") or ())
    return unique(t for t in terms if t)


def entry_links(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """All link dicts of an entry (alternate first), never None."""
    links = [link for link in entry.get("links") or () if isinstance(link, Mapping)]
    if entry.get("link") and not any(link.get("href") == entry["link"] for link in links):
        links.insert(0, {"href": entry["link"], "rel": "alternate"})
    return links


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """Values in first-seen order without repeats."""
    return tuple(dict.fromkeys(values))


def int_or_none(value: Any) -> int | None:
    """An int from JSON/feed input, or None for anything that is not a plain whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None
