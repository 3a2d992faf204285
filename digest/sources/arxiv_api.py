"""Parser for the arXiv API's Atom responses (export.arxiv.org/api/query), incl. error entries.

An `Error` entry (served with HTTP 400) becomes ParseResult.error; zero results is an empty result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from digest.sources.base import PaperRecord, ParseResult, cap_warnings
from digest.sources.ids import normalize_doi, split_arxiv_id
from digest.sources.xmlfeed import (
    MAX_ITEMS,
    entry_authors,
    entry_categories,
    entry_datetime,
    entry_links,
    int_or_none,
    load_feed,
    one_line,
    text_of,
    unique,
)

KIND = "arxiv-api"
API_URL = "https://export.arxiv.org/api/query"
PAGE_SIZE = 100
# arXiv's terms of use: no more than one request every three seconds.
POLITENESS_DELAY_S = 3.0


def _is_error(entry: Mapping[str, Any]) -> bool:
    return "/api/errors" in str(entry.get("id", "")) or (
        str(entry.get("title", "")).strip() == "Error" and not split_arxiv_id(entry.get("id"))
    )


def parse(data: bytes, *, source: str = KIND, max_items: int = MAX_ITEMS) -> ParseResult:
    """Parse one arXiv API response page into records, never raising."""
    document, error = load_feed(data)
    if document is None:
        return ParseResult(error=error)
    total = int_or_none(document.feed.get("opensearch_totalresults"))
    errors = [e for e in document.entries if _is_error(e)]
    if errors:
        message = text_of(errors[0], "summary") or text_of(errors[0], "title")
        return ParseResult(error=f"arXiv API error: {one_line(message)}", total=total)
    records: list[PaperRecord] = []
    skipped = 0
    for entry in document.entries[:max_items]:
        parts = split_arxiv_id(entry.get("id"))
        title = text_of(entry, "title", html_markup=False)
        if parts is None or not title:
            skipped += 1
            continue
        arxiv_id, version = parts
        links = entry_links(entry)
        pdf = next((lk["href"] for lk in links if lk.get("title") == "pdf"), None)
        primary = (entry.get("arxiv_primary_category") or {}).get("term")
        categories = unique(c for c in ((primary,) if primary else ()) + entry_categories(entry))
        records.append(
            PaperRecord(
                key=arxiv_id,
                title=title,
                source=source,
                # Atom type="text": entities were decoded by the XML layer, once.
                abstract=text_of(entry, "summary", html_markup=False),
                arxiv_id=arxiv_id,
                version=version,
                doi=normalize_doi(entry.get("arxiv_doi")),
                authors=entry_authors(entry),
                categories=categories,
                url=f"https://arxiv.org/abs/{arxiv_id}",
                pdf_url=pdf or f"https://arxiv.org/pdf/{arxiv_id}",
                published=entry_datetime(entry, "published", "updated"),
                announce="new",
            )
        )
    skipped += max(0, len(document.entries) - max_items)
    warnings = cap_warnings(len(document.entries), max_items) + tuple(document.warnings)
    return ParseResult(records=tuple(records), skipped=skipped, warnings=warnings, total=total)


def query_url(
    base_url: str = API_URL,
    *,
    search_query: str | None = None,
    id_list: list[str] | None = None,
    start: int = 0,
    max_results: int = PAGE_SIZE,
) -> str:
    """An API query URL for one page; `base_url` may already carry search parameters."""
    params: dict[str, str | int] = {"start": start, "max_results": max_results}
    if search_query:
        params["search_query"] = search_query
    if id_list:
        params["id_list"] = ",".join(id_list)
    separator = "&" if "?" in base_url else "?"
    return base_url + separator + urlencode(params)
