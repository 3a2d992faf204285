"""Fetching one configured source, by kind: a conditional GET of a feed, Hugging Face's lists
one date at a time, or the arXiv API page by page. Every path ends in a recorded report."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING

from digest.settings import Settings, SourceSettings
from digest.sources import arxiv_query, parse
from digest.sources.base import PaperRecord, ParseResult
from digest.sources.fetch import Fetcher, FetchResult, host_of, http_failure, with_params
from digest.store import feeds
from digest.usecases.ingest_report import (
    NOT_MODIFIED,
    SourceReport,
    fail,
    record_feed_state,
    store_result,
)

if TYPE_CHECKING:
    from digest.bootstrap import Services

Progress = Callable[[SourceReport, str], None]
# Hugging Face daily lists asked for in one backfill, at most.
MAX_HF_DAYS = 31


def allowed_hosts(settings: Settings) -> set[str]:
    """Hosts a fetch may contact: those of configured sources plus fetch.allowed_hosts."""
    hosts = {host_of(s.url) for s in settings.sources}
    hosts.update(h.lower() for h in settings.fetch.allowed_hosts)
    hosts.discard("")
    return hosts


def _failure(kind: str, result: FetchResult) -> str:
    return arxiv_query.api_failure(result) if kind == "arxiv-api" else http_failure(result)


async def _fetch_document(
    services: Services,
    fetcher: Fetcher,
    src: SourceSettings,
    report: SourceReport,
    *,
    now: datetime,
    since: datetime | None,
) -> None:
    """One request to a feed: conditional GET, parse, store (the arXiv RSS, HF and feed path)."""
    with services.reading() as tx:
        etag, last_modified = feeds.validators(tx, src.name)
    result = await fetcher.get(src.url, etag=etag, last_modified=last_modified)
    report.requests += result.requests
    report.http_status = result.status
    if result.error:
        fail(services, report, result.error, now=now, url=src.url)
        return
    if result.not_modified:
        # 304: nothing changed since the validators we sent; no parse, no store.
        report.status = NOT_MODIFIED
        record_feed_state(services, report, now=now, url=src.url)
        return
    if result.status is None or result.status >= 400:
        fail(services, report, _failure(src.kind, result), now=now, url=src.url)
        return
    max_items = fetcher.settings.max_items_per_feed
    parsed = parse(src.kind, result.body, source=src.name, max_items=max_items)
    store_result(
        services,
        parsed,
        report,
        now=now,
        url=src.url,
        etag=result.etag,
        last_modified=result.last_modified,
        since=since,
    )


async def _fetch_hf_days(
    services: Services,
    fetcher: Fetcher,
    src: SourceSettings,
    report: SourceReport,
    *,
    now: datetime,
    since: datetime,
) -> None:
    """Backfill Hugging Face daily lists one date at a time from `since` to today (max 31 days)."""
    day, last = since.date(), now.date()
    records: list[PaperRecord] = []
    warnings: list[str] = []
    skipped = 0
    days = 0
    while day <= last and days < MAX_HF_DAYS:
        result = await fetcher.get(with_params(src.url, date=day.isoformat()))
        report.requests += result.requests
        report.http_status = result.status
        if result.error or (result.status or 500) >= 400:
            warnings.append(f"{day}: {result.error or _failure(src.kind, result)}")
        else:
            parsed = parse(src.kind, result.body, source=src.name)
            records.extend(parsed.records)
            skipped += parsed.skipped
            warnings.extend(f"{day}: {w}" for w in ([parsed.error] if parsed.error else []))
        day = date.fromordinal(day.toordinal() + 1)
        days += 1
    if not records and warnings:
        fail(services, report, warnings[0], now=now, url=src.url)
        return
    combined = ParseResult(records=tuple(records), skipped=skipped, warnings=tuple(warnings))
    store_result(services, combined, report, now=now, url=src.url)


async def _fetch_arxiv_api(
    services: Services,
    fetcher: Fetcher,
    src: SourceSettings,
    report: SourceReport,
    *,
    now: datetime,
    since: datetime | None,
) -> None:
    url = arxiv_query.with_window(src.url, since, now)
    parsed, requests, status = await arxiv_query.read_pages(
        fetcher, url, source=src.name, max_items=fetcher.settings.max_items_per_feed
    )
    report.requests += requests
    report.http_status = status
    if parsed.error:
        fail(services, report, parsed.error, now=now, url=src.url)
        return
    store_result(services, parsed, report, now=now, url=src.url)


async def run_source(
    services: Services,
    fetcher: Fetcher,
    src: SourceSettings,
    *,
    now: datetime,
    since: datetime | None,
    progress: Progress | None,
) -> SourceReport:
    """Fetch, parse and store one source; whatever happens, a report comes back."""
    report = SourceReport(source=src.name, kind=src.kind)
    started = time.perf_counter()
    if progress:
        progress(report, "start")
    try:
        if src.kind == "arxiv-api":
            await _fetch_arxiv_api(services, fetcher, src, report, now=now, since=since)
        elif src.kind == "hf-daily" and since is not None:
            await _fetch_hf_days(services, fetcher, src, report, now=now, since=since)
        else:
            await _fetch_document(services, fetcher, src, report, now=now, since=since)
    except Exception as exc:  # a bug in one source's path must not stop the others
        reason = f"internal error: {type(exc).__name__}: {exc}"
        fail(services, report, reason, now=now, url=src.url)
    report.seconds = time.perf_counter() - started
    if progress:
        progress(report, "done")
    return report
