"""Parser for arXiv's RSS 2.0 announcement feeds (rss.arxiv.org/rss/<categories>).

Each item says `arXiv:ID vN Announce Type: new|cross|replace|replace-cross` then `Abstract: ...`.
Well-formed feeds take a fast xml.etree path (about 20x quicker than feedparser); anything
else falls back to feedparser's forgiving parser. Both paths yield identical records.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from digest.sources.base import PaperRecord, ParseResult, cap_warnings
from digest.sources.ids import arxiv_id_from_url, find_arxiv_id, normalize_doi, split_arxiv_id
from digest.sources.text import clean_text
from digest.sources.xmlfeed import (
    MAX_ITEMS,
    entry_authors,
    entry_categories,
    entry_datetime,
    load_feed,
    prescreen,
    split_authors,
    unique,
)

KIND = "arxiv-rss"
ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")
ARXIV_NS = "{http://arxiv.org/schemas/atom}"
DC_NS = "{http://purl.org/dc/elements/1.1/}"
_DESCRIPTION = re.compile(
    r"^\s*arXiv:(?P<id>\S+)\s+Announce\s+Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?(?P<abstract>.*)$",
    re.DOTALL | re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Item:
    """The fields of one item, whichever parser read them."""

    title: str
    link: str
    description: str
    guid: str
    categories: tuple[str, ...]
    authors: tuple[str, ...]
    published: datetime | None
    announce: str
    doi: str


def _rfc822(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _fast_items(data: bytes) -> list[_Item] | None:
    """Items read with xml.etree from a well-formed RSS document, else None (use feedparser)."""
    try:
        # Entity declarations were refused by prescreen(); expat never fetches external ones.
        root = ET.fromstring(data)
    except (ET.ParseError, ValueError, LookupError):
        return None
    channel = root.find("channel") if root.tag == "rss" else None
    if channel is None:
        return None
    items = []
    for element in channel.iter("item"):
        items.append(
            _Item(
                title=element.findtext("title") or "",
                link=element.findtext("link") or "",
                description=element.findtext("description") or "",
                guid=element.findtext("guid") or "",
                categories=unique(
                    t
                    for t in (
                        clean_text(c.text, html_markup=False) for c in element.iter("category")
                    )
                    if t
                ),
                authors=split_authors(
                    (c.text for c in element.iter(f"{DC_NS}creator")), split=True
                ),
                published=_rfc822(element.findtext("pubDate")),
                announce=element.findtext(f"{ARXIV_NS}announce_type") or "",
                doi=element.findtext(f"{ARXIV_NS}DOI") or "",
            )
        )
    return items


def _feedparser_items(data: bytes) -> tuple[list[_Item] | None, tuple[str, ...], str | None]:
    document, error = load_feed(data)
    if document is None:
        return None, (), error
    items = [
        _Item(
            title=str(entry.get("title") or ""),
            link=str(entry.get("link") or ""),
            description=str(entry.get("summary") or ""),
            guid=str(entry.get("id") or ""),
            categories=entry_categories(entry),
            authors=entry_authors(entry, split=True),
            published=entry_datetime(entry, "published", "updated"),
            announce=str(entry.get("arxiv_announce_type") or ""),
            doi=str(entry.get("arxiv_doi") or ""),
        )
        for entry in document.entries
    ]
    return items, document.warnings, None


def _record(item: _Item, source: str, warnings: list[str]) -> PaperRecord | None:
    # The description is TeX-bearing plain text escaped once for XML, not HTML.
    match = _DESCRIPTION.match(item.description)
    parts = (
        split_arxiv_id(item.guid)
        or (split_arxiv_id(match.group("id")) if match else None)
        or arxiv_id_from_url(item.link)
        or find_arxiv_id(item.description)
    )
    title = clean_text(item.title, html_markup=False)
    if parts is None or not title:
        return None
    arxiv_id, version = parts
    if version is None and match:
        version = (split_arxiv_id(match.group("id")) or (arxiv_id, None))[1]
    announce = (item.announce or (match.group("type") if match else "")).strip().lower() or "new"
    if announce not in ANNOUNCE_TYPES:
        warnings.append(f"{arxiv_id}: unknown announce type {announce!r}, taken as new")
        announce = "new"
    abstract = match.group("abstract") if match else item.description
    return PaperRecord(
        key=arxiv_id,
        title=title,
        source=source,
        abstract=clean_text(abstract, html_markup=False),
        arxiv_id=arxiv_id,
        version=version,
        doi=normalize_doi(item.doi),
        authors=item.authors,
        categories=item.categories,
        url=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
        published=item.published,
        announce=announce,
    )


def parse(
    data: bytes, *, source: str = KIND, max_items: int = MAX_ITEMS, fast: bool = True
) -> ParseResult:
    """Parse an arXiv RSS document into records (new, cross and replacements), never raising."""
    refusal = prescreen(data)
    if refusal:
        return ParseResult(error=refusal)
    items = _fast_items(data) if fast else None
    warnings: list[str] = []
    if items is None:
        items, parser_warnings, error = _feedparser_items(data)
        if items is None:
            return ParseResult(error=error)
        warnings.extend(parser_warnings)
    records: list[PaperRecord] = []
    skipped = 0
    for item in items[:max_items]:
        record = _record(item, source, warnings)
        if record is None:
            skipped += 1
        else:
            records.append(record)
    if len(items) > max_items:
        skipped += len(items) - max_items
        warnings[:0] = cap_warnings(len(items), max_items)
    return ParseResult(records=tuple(records), skipped=skipped, warnings=tuple(warnings))
