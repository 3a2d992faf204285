"""Parser for the Hugging Face Daily Papers API (api/daily_papers): the trending signal.

Each item carries the paper (arXiv id, title, summary, authors, upvotes, GitHub repo and stars,
AI summary) plus list-level fields (comment count, organization).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from digest.sources.base import PaperRecord, ParseResult, cap_warnings
from digest.sources.ids import canonical_url, split_arxiv_id
from digest.sources.text import clean_text
from digest.sources.xmlfeed import MAX_ITEMS, int_or_none, one_line, unique

KIND = "hf-daily"
PAPER_PAGE = "https://huggingface.co/papers/"


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _organization(item: Mapping[str, Any], paper: Mapping[str, Any]) -> str | None:
    for candidate in (paper.get("organization"), item.get("organization")):
        if isinstance(candidate, Mapping):
            name = clean_text(candidate.get("fullname") or candidate.get("name"))
            if name:
                return name
        elif isinstance(candidate, str) and candidate.strip():
            return clean_text(candidate)
    return None


def _record(item: Any, source: str) -> PaperRecord | None:
    if not isinstance(item, Mapping):
        return None
    paper = item.get("paper")
    if not isinstance(paper, Mapping):
        paper = item
    paper_id = str(paper.get("id") or "").strip()
    title = clean_text(paper.get("title") or item.get("title"), html_markup=False)
    if not paper_id or not title:
        return None
    parts = split_arxiv_id(paper_id)
    page = canonical_url(PAPER_PAGE + paper_id)
    if parts:
        arxiv_id, version = parts
        key = arxiv_id
    elif page:
        arxiv_id, version, key = None, None, f"url:{page}"
    else:
        return None
    authors = unique(
        name
        for name in (
            clean_text(a.get("name"), html_markup=False)
            for a in paper.get("authors") or ()
            if isinstance(a, Mapping)
        )
        if name
    )
    code = paper.get("githubRepo") if isinstance(paper.get("githubRepo"), str) else None
    return PaperRecord(
        key=key,
        title=title,
        source=source,
        abstract=clean_text(paper.get("summary") or item.get("summary"), html_markup=False),
        arxiv_id=arxiv_id,
        version=version,
        authors=authors,
        url=page,
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}" if arxiv_id else None,
        code_url=canonical_url(code) if code else None,
        upvotes=int_or_none(paper.get("upvotes")),
        github_stars=int_or_none(paper.get("githubStars")),
        comments=int_or_none(item.get("numComments")),
        ai_summary=clean_text(paper.get("ai_summary"), html_markup=False) or None,
        organization=_organization(item, paper),
        published=_datetime(paper.get("publishedAt") or item.get("publishedAt")),
        announce="new",
    )


def parse(data: bytes, *, source: str = KIND, max_items: int = MAX_ITEMS) -> ParseResult:
    """Parse one Daily Papers API response (a JSON list of items) into records, never raising."""
    if not data or not data.strip():
        return ParseResult(error="empty body")
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError) as exc:
        return ParseResult(error=f"not JSON: {one_line(exc)}")
    if isinstance(payload, Mapping):
        # Tolerate a wrapped list ({"papers": [...]}); an API error object has "error".
        if "error" in payload:
            return ParseResult(error=f"API error: {one_line(payload['error'])}")
        payload = next((v for v in payload.values() if isinstance(v, list)), None)
    if not isinstance(payload, list):
        return ParseResult(error="unexpected JSON: expected a list of papers")
    records: list[PaperRecord] = []
    skipped = 0
    for item in payload[:max_items]:
        try:
            record = _record(item, source)
        except (TypeError, ValueError, AttributeError):
            # Wrong-typed fields (authors as a number, ...) skip the item, not the document.
            record = None
        if record is None:
            skipped += 1
        else:
            records.append(record)
    # Items past the cap were never read: say so, rather than count them as malformed.
    warnings = cap_warnings(len(payload), max_items)
    warnings += (f"{skipped} items without id or title",) if skipped else ()
    skipped += max(0, len(payload) - max_items)
    return ParseResult(records=tuple(records), skipped=skipped, warnings=warnings)
