"""Reading the arXiv API over HTTP: a date window on a query, and paging at arXiv's pace.

The parser (arxiv_api.py) stays pure; this adapter drives a Fetcher and hands it the pages.
"""

from __future__ import annotations

from datetime import datetime

import httpx

from digest.sources import arxiv_api, parse
from digest.sources.base import PaperRecord, ParseResult
from digest.sources.fetch import Fetcher, FetchResult, http_failure, with_params


def with_window(url: str, since: datetime | None, now: datetime) -> str:
    """The query of `url` narrowed to papers submitted between `since` and `now`."""
    if since is None:
        return url
    window = f"submittedDate:[{since:%Y%m%d%H%M} TO {now:%Y%m%d%H%M}]"
    query = httpx.URL(url).params.get("search_query")
    return str(
        httpx.URL(url).copy_set_param(
            "search_query", f"({query}) AND {window}" if query else window
        )
    )


def api_failure(result: FetchResult) -> str:
    """Why an API request failed: arXiv explains a bad query in an Atom Error entry served with
    HTTP 400, which says more than the status."""
    if result.status == 400 and result.body:
        parsed = arxiv_api.parse(result.body)
        if parsed.error:
            return f"HTTP 400: {parsed.error}"
    return http_failure(result)


async def read_pages(
    fetcher: Fetcher, url: str, *, source: str, max_items: int
) -> tuple[ParseResult, int, int | None]:
    """Read an API query page by page (3 s apart); returns records, requests and last status."""
    records: list[PaperRecord] = []
    warnings: list[str] = []
    skipped = requests = 0
    status: int | None = None
    page = min(arxiv_api.PAGE_SIZE, max_items)
    start = 0
    while len(records) < max_items:
        page_url = with_params(url, start=start, max_results=page)
        result = await fetcher.get(page_url, min_interval=arxiv_api.POLITENESS_DELAY_S)
        requests += result.requests
        status = result.status
        failure = result.error or (api_failure(result) if (result.status or 500) >= 400 else None)
        parsed = parse(arxiv_api.KIND, result.body, source=source) if not failure else None
        if parsed is not None and parsed.error:
            failure = parsed.error
        if failure:
            if not records:
                return ParseResult(error=failure), requests, status
            warnings.append(f"page at {start}: {failure}")
            break
        assert parsed is not None
        records.extend(parsed.records)
        skipped += parsed.skipped
        warnings.extend(parsed.warnings)
        start += page
        if not parsed.records or parsed.total is None or start >= parsed.total:
            break
    result_records = tuple(records[:max_items])
    return (
        ParseResult(records=result_records, skipped=skipped, warnings=tuple(warnings)),
        requests,
        status,
    )
