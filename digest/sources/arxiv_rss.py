"""Parser for arXiv's RSS 2.0 announcement feeds (rss.arxiv.org/rss/<categories>).

Each item says `arXiv:ID vN Announce Type: new|cross|replace|replace-cross` then `Abstract: ...`.
"""

from __future__ import annotations

import re

from digest.sources.base import PaperRecord, ParseResult
from digest.sources.ids import arxiv_id_from_url, find_arxiv_id, normalize_doi, split_arxiv_id
from digest.sources.text import clean_text
from digest.sources.xmlfeed import (
    MAX_ITEMS,
    entry_authors,
    entry_categories,
    entry_datetime,
    load_feed,
    text_of,
)

KIND = "arxiv-rss"
ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")
_DESCRIPTION = re.compile(
    r"^\s*arXiv:(?P<id>\S+)\s+Announce\s+Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?(?P<abstract>.*)$",
    re.DOTALL | re.IGNORECASE,
)


def parse(data: bytes, *, source: str = KIND, max_items: int = MAX_ITEMS) -> ParseResult:
    """Parse an arXiv RSS document into records (new, cross and replacements), never raising."""
    document, error = load_feed(data)
    if document is None:
        return ParseResult(error=error)
    records: list[PaperRecord] = []
    skipped = 0
    warnings = list(document.warnings)
    for entry in document.entries[:max_items]:
        # The description is TeX-bearing plain text escaped once for XML, not HTML.
        raw = entry.get("summary") or ""
        match = _DESCRIPTION.match(raw)
        parts = (
            split_arxiv_id(entry.get("id"))
            or (split_arxiv_id(match.group("id")) if match else None)
            or arxiv_id_from_url(entry.get("link"))
            or find_arxiv_id(raw)
        )
        title = text_of(entry, "title", html_markup=False)
        if parts is None or not title:
            skipped += 1
            continue
        arxiv_id, version = parts
        if version is None and match:
            version = (split_arxiv_id(match.group("id")) or (arxiv_id, None))[1]
        announce = str(entry.get("arxiv_announce_type") or (match and match.group("type")) or "")
        announce = announce.strip().lower() or "new"
        if announce not in ANNOUNCE_TYPES:
            warnings.append(f"{arxiv_id}: unknown announce type {announce!r}, taken as new")
            announce = "new"
        abstract = clean_text(match.group("abstract") if match else raw, html_markup=False)
        records.append(
            PaperRecord(
                key=arxiv_id,
                title=title,
                source=source,
                abstract=abstract,
                arxiv_id=arxiv_id,
                version=version,
                doi=normalize_doi(entry.get("arxiv_doi")),
                authors=entry_authors(entry, split=True),
                categories=entry_categories(entry),
                url=f"https://arxiv.org/abs/{arxiv_id}",
                pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
                published=entry_datetime(entry, "published", "updated"),
                announce=announce,
            )
        )
    skipped += max(0, len(document.entries) - max_items)
    if len(document.entries) > max_items:
        warnings.append(f"feed has {len(document.entries)} items; read the first {max_items}")
    return ParseResult(records=tuple(records), skipped=skipped, warnings=tuple(warnings))
