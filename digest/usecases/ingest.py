"""Ingestion use case: fetch each source, parse, merge into the paper table, record FeedState.

One bad source never stops the others and no exception escapes: every outcome is a SourceReport
and a FeedState row with a one-line reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlmodel import Session, select

from digest.db import session_scope
from digest.models import FeedState, utcnow
from digest.settings import Settings, SourceSettings
from digest.sources import KINDS, arxiv_api, parse
from digest.sources.base import ParseResult
from digest.sources.fetch import Clock, Fetcher, FetchResult, Sleep, host_of
from digest.sources.ids import normalize_arxiv_id
from digest.sources.xmlfeed import MAX_ITEMS, one_line
from digest.store.papers import LOOKUP, upsert_papers

# Outcomes recorded in FeedState.last_status.
OK, PARTIAL, EMPTY, NOT_MODIFIED, FAILED = "ok", "partial", "empty", "not-modified", "failed"
SUCCESSFUL = (OK, PARTIAL, EMPTY, NOT_MODIFIED)


@dataclass
class SourceReport:
    """What one source run did: counts, status, a one-line reason, and how long it took."""

    source: str
    kind: str
    status: str = OK
    fetched: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    http_status: int | None = None
    requests: int = 0

    @property
    def failed(self) -> bool:
        """True when the source produced nothing usable."""
        return self.status == FAILED


def _status(result: ParseResult, stored_ok: bool) -> str:
    if not stored_ok:
        return FAILED
    problems = bool(result.error or result.warnings or result.skipped)
    if not result.records:
        return FAILED if problems else EMPTY
    return PARTIAL if problems else OK


def record_feed_state(
    session: Session,
    report: SourceReport,
    *,
    now: datetime,
    url: str | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FeedState:
    """Write one source's outcome (and any new conditional-GET validators) into FeedState."""
    state = session.exec(select(FeedState).where(FeedState.source == report.source)).first()
    if state is None:
        state = FeedState(source=report.source, url=url or "")
        session.add(state)
    if url:
        state.url = url
    if etag is not None:
        state.etag = etag
    if last_modified is not None:
        state.last_modified = last_modified
    state.last_fetch_at = now
    state.last_status = report.status
    state.last_error = one_line(report.error) if report.error else None
    state.fetched = report.fetched
    state.new = report.new
    state.updated = report.changed
    if report.status in SUCCESSFUL:
        state.last_success_at = now
    session.flush()
    return state


def store_result(
    engine: Engine,
    result: ParseResult,
    report: SourceReport,
    *,
    now: datetime,
    url: str | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    since: datetime | None = None,
) -> SourceReport:
    """Upsert parsed records and record the outcome; a database error fails this source only."""
    records = result.records
    if since is not None:
        # Undated records are kept: a feed that omits dates should not lose every item.
        records = tuple(r for r in records if r.published is None or r.published >= since)
    report.fetched += len(result.records)
    report.skipped += result.skipped + (len(result.records) - len(records))
    report.warnings.extend(result.warnings)
    stored_ok = True
    if records:
        try:
            with session_scope(engine) as session:
                counts = upsert_papers(session, records, now=now)
            report.new += counts.new
            report.changed += counts.changed
            report.unchanged += counts.unchanged
            report.skipped += counts.skipped
        except Exception as exc:  # one source's bad row must not abort the run
            stored_ok = False
            result = ParseResult(error=f"store failed: {type(exc).__name__}: {one_line(exc)}")
    report.status = _status(result, stored_ok)
    if result.error:
        report.errors += 1
    report.error = (
        result.error
        or ("0 items" if report.status == EMPTY else None)
        or (result.warnings[0] if result.warnings else None)
        or (f"{result.skipped} items without id or title skipped" if result.skipped else None)
    )
    try:
        with session_scope(engine) as session:
            # Validators only move forward on a usable body, so a bad fetch is retried in full.
            keep = report.status in (OK, PARTIAL, EMPTY)
            record_feed_state(
                session,
                report,
                now=now,
                url=url,
                etag=etag if keep else None,
                last_modified=last_modified if keep else None,
            )
    except Exception as exc:
        report.errors += 1
        report.warnings.append(f"FeedState not recorded: {one_line(exc)}")
    return report


def ingest_bytes(
    engine: Engine,
    data: bytes,
    *,
    kind: str,
    source: str,
    now: datetime | None = None,
    url: str | None = None,
    max_items: int = MAX_ITEMS,
    since: datetime | None = None,
) -> SourceReport:
    """Parse one document of `kind`, merge its papers, record FeedState; never raises on input."""
    started = time.perf_counter()
    now = now or utcnow()
    report = SourceReport(source=source, kind=kind)
    result = parse(kind, data, source=source, max_items=max_items)
    store_result(engine, result, report, now=now, url=url, since=since)
    report.seconds = time.perf_counter() - started
    return report


def ingest_file(
    engine: Engine,
    path: str | Path,
    *,
    kind: str,
    source: str | None = None,
    now: datetime | None = None,
    since: datetime | None = None,
) -> SourceReport:
    """Ingest one recorded document from disk, as source `source` (default: the format's name;
    never the file's name, which would make every recording a source of its own)."""
    path = Path(path)
    name = source or kind
    if kind not in KINDS:
        report = SourceReport(source=name, kind=kind, status=FAILED, errors=1)
        report.error = f"unknown format {kind!r} (one of {', '.join(KINDS)})"
        return report
    try:
        data = path.read_bytes()
    except OSError as exc:
        report = SourceReport(source=name, kind=kind, status=FAILED, errors=1)
        report.error = f"cannot read {path.name}: {one_line(exc.strerror or exc)}"
        with session_scope(engine) as session:
            record_feed_state(session, report, now=now or utcnow(), url=path.as_uri())
        return report
    return ingest_bytes(
        engine, data, kind=kind, source=name, now=now, url=path.resolve().as_uri(), since=since
    )


# --- fetching configured sources -------------------------------------------------------------

Progress = Callable[[SourceReport, str], None]


def allowed_hosts(settings: Settings) -> set[str]:
    """Hosts a fetch may contact: those of configured sources plus fetch.allowed_hosts."""
    hosts = {host_of(s.url) for s in settings.sources}
    hosts.update(h.lower() for h in settings.fetch.allowed_hosts)
    hosts.discard("")
    return hosts


def _with_params(url: str, **params: str | int) -> str:
    return str(httpx.URL(url).copy_merge_params({k: str(v) for k, v in params.items()}))


def _feed_state(engine: Engine, name: str) -> tuple[str | None, str | None]:
    with session_scope(engine) as session:
        state = session.exec(select(FeedState).where(FeedState.source == name)).first()
        return (state.etag, state.last_modified) if state else (None, None)


def _http_failure(kind: str, result: FetchResult) -> str:
    if kind == "arxiv-api" and result.status == 400 and result.body:
        # arXiv explains a bad query in an Atom Error entry served with HTTP 400.
        parsed = parse(kind, result.body)
        if parsed.error:
            return f"HTTP 400: {parsed.error}"
    reason = httpx.codes.get_reason_phrase(result.status or 0)
    return f"HTTP {result.status} {reason}".strip() + f" from {result.final_url or result.url}"


def _fail(engine: Engine, report: SourceReport, reason: str, *, now: datetime, url: str) -> None:
    report.status = FAILED
    report.error = one_line(reason)
    report.errors += 1
    try:
        with session_scope(engine) as session:
            record_feed_state(session, report, now=now, url=url)
    except Exception as exc:  # the database itself is down: still report, never raise
        report.warnings.append(f"FeedState not recorded: {one_line(exc)}")


async def _fetch_document(
    fetcher: Fetcher,
    engine: Engine,
    src: SourceSettings,
    report: SourceReport,
    *,
    now: datetime,
    since: datetime | None,
) -> None:
    """One request to a feed: conditional GET, parse, store (the arXiv RSS, HF and feed path)."""
    etag, last_modified = _feed_state(engine, src.name)
    result = await fetcher.get(src.url, etag=etag, last_modified=last_modified)
    report.requests += result.requests
    report.http_status = result.status
    if result.error:
        _fail(engine, report, result.error, now=now, url=src.url)
        return
    if result.not_modified:
        # 304: nothing changed since the validators we sent; no parse, no store.
        report.status = NOT_MODIFIED
        with session_scope(engine) as session:
            record_feed_state(session, report, now=now, url=src.url)
        return
    if result.status is None or result.status >= 400:
        _fail(engine, report, _http_failure(src.kind, result), now=now, url=src.url)
        return
    max_items = fetcher.settings.max_items_per_feed
    parsed = parse(src.kind, result.body, source=src.name, max_items=max_items)
    store_result(
        engine,
        parsed,
        report,
        now=now,
        url=src.url,
        etag=result.etag,
        last_modified=result.last_modified,
        since=since,
    )


async def _fetch_hf_days(
    fetcher: Fetcher,
    engine: Engine,
    src: SourceSettings,
    report: SourceReport,
    *,
    now: datetime,
    since: datetime,
) -> None:
    """Backfill Hugging Face daily lists one date at a time from `since` to today (max 31 days)."""
    day, last = since.date(), now.date()
    records: list = []
    warnings: list[str] = []
    skipped = 0
    days = 0
    while day <= last and days < 31:
        result = await fetcher.get(_with_params(src.url, date=day.isoformat()))
        report.requests += result.requests
        report.http_status = result.status
        if result.error or (result.status or 500) >= 400:
            warnings.append(f"{day}: {result.error or _http_failure(src.kind, result)}")
        else:
            parsed = parse(src.kind, result.body, source=src.name)
            records.extend(parsed.records)
            skipped += parsed.skipped
            warnings.extend(f"{day}: {w}" for w in ([parsed.error] if parsed.error else []))
        day = date.fromordinal(day.toordinal() + 1)
        days += 1
    if not records and warnings:
        _fail(engine, report, warnings[0], now=now, url=src.url)
        return
    combined = ParseResult(records=tuple(records), skipped=skipped, warnings=tuple(warnings))
    store_result(engine, combined, report, now=now, url=src.url)


def _arxiv_query(url: str, since: datetime | None, now: datetime) -> str:
    if since is None:
        return url
    window = f"submittedDate:[{since:%Y%m%d%H%M} TO {now:%Y%m%d%H%M}]"
    query = httpx.URL(url).params.get("search_query")
    return str(
        httpx.URL(url).copy_set_param(
            "search_query", f"({query}) AND {window}" if query else window
        )
    )


async def _page_arxiv_api(
    fetcher: Fetcher, url: str, *, source: str, max_items: int
) -> tuple[ParseResult, int, int | None]:
    """Read an API query page by page (3 s apart); returns records, requests and last status."""
    records: list = []
    warnings: list[str] = []
    skipped = requests = 0
    status: int | None = None
    page = min(arxiv_api.PAGE_SIZE, max_items)
    start = 0
    while len(records) < max_items:
        page_url = _with_params(url, start=start, max_results=page)
        result = await fetcher.get(page_url, min_interval=arxiv_api.POLITENESS_DELAY_S)
        requests += result.requests
        status = result.status
        failure = result.error or (
            _http_failure("arxiv-api", result) if (result.status or 500) >= 400 else None
        )
        parsed = parse("arxiv-api", result.body, source=source) if not failure else None
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
        (requests),
        status,
    )


async def _fetch_arxiv_api(
    fetcher: Fetcher,
    engine: Engine,
    src: SourceSettings,
    report: SourceReport,
    *,
    now: datetime,
    since: datetime | None,
) -> None:
    url = _arxiv_query(src.url, since, now)
    parsed, requests, status = await _page_arxiv_api(
        fetcher, url, source=src.name, max_items=fetcher.settings.max_items_per_feed
    )
    report.requests += requests
    report.http_status = status
    if parsed.error:
        _fail(engine, report, parsed.error, now=now, url=src.url)
        return
    store_result(engine, parsed, report, now=now, url=src.url)


async def _run_source(
    fetcher: Fetcher,
    engine: Engine,
    src: SourceSettings,
    *,
    now: datetime,
    since: datetime | None,
    progress: Progress | None,
) -> SourceReport:
    report = SourceReport(source=src.name, kind=src.kind)
    started = time.perf_counter()
    if progress:
        progress(report, "start")
    try:
        if src.kind == "arxiv-api":
            await _fetch_arxiv_api(fetcher, engine, src, report, now=now, since=since)
        elif src.kind == "hf-daily" and since is not None:
            await _fetch_hf_days(fetcher, engine, src, report, now=now, since=since)
        else:
            await _fetch_document(fetcher, engine, src, report, now=now, since=since)
    except Exception as exc:  # a bug in one source's path must not stop the others
        _fail(engine, report, f"internal error: {type(exc).__name__}: {exc}", now=now, url=src.url)
    report.seconds = time.perf_counter() - started
    if progress:
        progress(report, "done")
    return report


async def fetch_sources(
    settings: Settings,
    engine: Engine,
    *,
    source: str | None = None,
    since: datetime | None = None,
    http: httpx.AsyncClient | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    sleep: Sleep | None = None,
    clock: Clock | None = None,
) -> list[SourceReport]:
    """Fetch every enabled source (or the one named), each host in turn, other hosts in parallel."""
    now = now or utcnow()
    chosen = [s for s in settings.sources if s.enabled and (source is None or s.name == source)]
    if source is not None and not chosen:
        known = ", ".join(s.name for s in settings.sources) or "none configured"
        report = SourceReport(source=source, kind="?", status=FAILED, errors=1)
        report.error = f"no enabled source named {source!r} (sources: {known})"
        return [report]
    extra: dict[str, Any] = {}
    if sleep is not None:
        extra["sleep"] = sleep
    if clock is not None:
        extra["clock"] = clock
    by_host: dict[str, list[SourceSettings]] = {}
    for src in chosen:
        by_host.setdefault(host_of(src.url), []).append(src)

    async with Fetcher(
        settings.fetch, allowed_hosts=allowed_hosts(settings), client=http, **extra
    ) as fetcher:

        async def run_host(group: list[SourceSettings]) -> list[SourceReport]:
            # Sources on one host run one after another: one connection, spaced requests.
            return [
                await _run_source(fetcher, engine, s, now=now, since=since, progress=progress)
                for s in group
            ]

        grouped = await asyncio.gather(*(run_host(group) for group in by_host.values()))
    reports = {r.source: r for group in grouped for r in group}
    return [reports[s.name] for s in chosen]


async def lookup_arxiv_ids(
    ids: Iterable[str],
    *,
    settings: Settings,
    engine: Engine | None = None,
    http: httpx.AsyncClient | None = None,
    api_url: str = arxiv_api.API_URL,
    now: datetime | None = None,
    sleep: Sleep | None = None,
    clock: Clock | None = None,
) -> ParseResult:
    """Look papers up by arXiv id (seed papers); stored as reference rows when `engine` is given."""
    wanted = list(dict.fromkeys(i for i in (normalize_arxiv_id(x) for x in ids) if i))
    if not wanted:
        return ParseResult()
    extra: dict[str, Any] = {}
    if sleep is not None:
        extra["sleep"] = sleep
    if clock is not None:
        extra["clock"] = clock
    hosts = allowed_hosts(settings) | {host_of(api_url)}
    records: list = []
    warnings: list[str] = []
    async with Fetcher(settings.fetch, allowed_hosts=hosts, client=http, **extra) as fetcher:
        for start in range(0, len(wanted), arxiv_api.PAGE_SIZE):
            chunk = wanted[start : start + arxiv_api.PAGE_SIZE]
            url = _with_params(api_url, id_list=",".join(chunk))
            parsed, _requests, _status = await _page_arxiv_api(
                fetcher, url, source="arxiv-lookup", max_items=len(chunk)
            )
            if parsed.error:
                warnings.append(parsed.error)
            records.extend(parsed.records)
            warnings.extend(parsed.warnings)
    if engine is not None and records:
        # Seeds are reference data: stored so profiles can use them, never announced as new.
        with session_scope(engine) as session:
            upsert_papers(
                session, [replace(r, announce=LOOKUP) for r in records], now=now or utcnow()
            )
    error = warnings[0] if warnings and not records else None
    return ParseResult(records=tuple(records), warnings=tuple(warnings), error=error)
