"""Parser for any RSS/Atom feed (journals, bioRxiv, third-party Hugging Face feeds).

The key is the arXiv id found in the entry's links or guid, else its DOI, else its canonical link.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from digest.sources.base import PaperRecord, ParseResult, cap_warnings
from digest.sources.ids import (
    arxiv_id_from_url,
    canonical_url,
    find_arxiv_id,
    normalize_doi,
    split_arxiv_id,
)
from digest.sources.xmlfeed import (
    MAX_ITEMS,
    entry_authors,
    entry_categories,
    entry_datetime,
    entry_links,
    load_feed,
    text_of,
)

KIND = "feed"


def _arxiv(
    entry: Mapping[str, Any], links: list[Mapping[str, Any]]
) -> tuple[str, int | None] | None:
    for link in links:
        found = arxiv_id_from_url(str(link.get("href") or ""))
        if found:
            return found
    guid = str(entry.get("id") or "")
    return (
        arxiv_id_from_url(guid)
        or split_arxiv_id(guid)
        or (find_arxiv_id(guid) if "arxiv" in guid.lower() else None)
    )


def _doi(entry: Mapping[str, Any], links: list[Mapping[str, Any]]) -> str | None:
    for name in ("prism_doi", "dc_identifier", "arxiv_doi", "id"):
        doi = normalize_doi(str(entry.get(name) or ""))
        if doi:
            return doi
    for link in links:
        doi = normalize_doi(str(link.get("href") or ""))
        if doi:
            return doi
    return None


def _record(entry: Mapping[str, Any], source: str) -> PaperRecord | None:
    links = entry_links(entry)
    title = text_of(entry, "title")
    link = next(
        (
            str(lk["href"])
            for lk in links
            if lk.get("href") and lk.get("rel", "alternate") == "alternate"
        ),
        None,
    )
    url = canonical_url(link)
    arxiv = _arxiv(entry, links)
    doi = _doi(entry, links)
    if arxiv:
        key = arxiv[0]
    elif doi:
        key = f"doi:{doi}"
    elif url:
        key = f"url:{url}"
    else:
        return None
    if not title:
        return None
    summary = text_of(entry, "summary")
    content = entry.get("content") or ()
    if content and isinstance(content[0], Mapping):
        body = text_of({"v": content[0].get("value"), "v_detail": content[0]}, "v")
        summary = body if len(body) > len(summary) else summary
    pdf = next(
        (str(lk["href"]) for lk in links if "pdf" in str(lk.get("type", "")) and lk.get("href")),
        None,
    )
    arxiv_id, version = arxiv if arxiv else (None, None)
    return PaperRecord(
        key=key,
        title=title,
        source=source,
        abstract=summary,
        arxiv_id=arxiv_id,
        version=version,
        doi=doi,
        authors=entry_authors(entry),
        categories=entry_categories(entry),
        url=link if link and url else None,
        pdf_url=pdf or (f"https://arxiv.org/pdf/{arxiv_id}" if arxiv_id else None),
        published=entry_datetime(entry, "published", "updated", "created"),
        announce="new",
    )


def parse(data: bytes, *, source: str = KIND, max_items: int = MAX_ITEMS) -> ParseResult:
    """Parse any RSS/Atom document into records, never raising."""
    document, error = load_feed(data)
    if document is None:
        return ParseResult(error=error)
    records: list[PaperRecord] = []
    skipped = 0
    for entry in document.entries[:max_items]:
        record = _record(entry, source)
        if record is None:
            skipped += 1
        else:
            records.append(record)
    skipped += max(0, len(document.entries) - max_items)
    warnings = cap_warnings(len(document.entries), max_items) + tuple(document.warnings)
    return ParseResult(records=tuple(records), skipped=skipped, warnings=warnings)
