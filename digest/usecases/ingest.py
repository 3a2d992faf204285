"""Ingestion use case: fetch each source, parse, merge into the paper table, record FeedState.

One bad source never stops the others and no exception escapes: every outcome is a SourceReport
and a FeedState row with a one-line reason. The fetch paths per kind are in ingest_fetch, the
report and its recording in ingest_report, the merge rules in paper_merge.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from digest.settings import SourceSettings
from digest.sources import KINDS, arxiv_api, arxiv_query, parse
from digest.sources.base import PaperRecord, ParseResult
from digest.sources.fetch import host_of, with_params
from digest.sources.ids import normalize_arxiv_id
from digest.sources.xmlfeed import MAX_ITEMS, one_line
from digest.store.papers import LOOKUP
from digest.usecases.ingest_fetch import Progress, allowed_hosts, run_source
from digest.usecases.ingest_report import (
    EMPTY,
    FAILED,
    NOT_MODIFIED,
    OK,
    PARTIAL,
    SUCCESSFUL,
    SourceReport,
    record_feed_state,
    store_result,
)
from digest.usecases.paper_merge import upsert_papers

if TYPE_CHECKING:
    from digest.bootstrap import Services

__all__ = [
    "EMPTY",
    "FAILED",
    "NOT_MODIFIED",
    "OK",
    "PARTIAL",
    "SUCCESSFUL",
    "Progress",
    "SourceReport",
    "allowed_hosts",
    "fetch_sources",
    "ingest_bytes",
    "ingest_file",
    "lookup_arxiv_ids",
]


def ingest_bytes(
    services: Services,
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
    now = now or services.clock()
    report = SourceReport(source=source, kind=kind)
    result = parse(kind, data, source=source, max_items=max_items)
    store_result(services, result, report, now=now, url=url, since=since)
    report.seconds = time.perf_counter() - started
    return report


def ingest_file(
    services: Services,
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
        record_feed_state(services, report, now=now or services.clock(), url=path.as_uri())
        return report
    return ingest_bytes(
        services, data, kind=kind, source=name, now=now, url=path.resolve().as_uri(), since=since
    )


async def fetch_sources(
    services: Services,
    *,
    source: str | None = None,
    since: datetime | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> list[SourceReport]:
    """Fetch every enabled source (or the one named), each host in turn, other hosts in parallel."""
    settings = services.settings
    now = now or services.clock()
    chosen = [s for s in settings.sources if s.enabled and (source is None or s.name == source)]
    if source is not None and not chosen:
        known = ", ".join(s.name for s in settings.sources) or "none configured"
        report = SourceReport(source=source, kind="?", status=FAILED, errors=1)
        report.error = f"no enabled source named {source!r} (sources: {known})"
        return [report]
    by_host: dict[str, list[SourceSettings]] = {}
    for src in chosen:
        by_host.setdefault(host_of(src.url), []).append(src)

    async with services.fetchers.open(allowed_hosts(settings)) as fetcher:

        async def run_host(group: list[SourceSettings]) -> list[SourceReport]:
            # Sources on one host run one after another: one connection, spaced requests.
            return [
                await run_source(services, fetcher, s, now=now, since=since, progress=progress)
                for s in group
            ]

        grouped = await asyncio.gather(*(run_host(group) for group in by_host.values()))
    reports = {r.source: r for group in grouped for r in group}
    return [reports[s.name] for s in chosen]


async def lookup_arxiv_ids(
    services: Services,
    ids: Iterable[str],
    *,
    api_url: str = arxiv_api.API_URL,
    now: datetime | None = None,
) -> ParseResult:
    """Look papers up by arXiv id (seed papers) and store them as reference rows."""
    wanted = list(dict.fromkeys(i for i in (normalize_arxiv_id(x) for x in ids) if i))
    if not wanted:
        return ParseResult()
    hosts = allowed_hosts(services.settings) | {host_of(api_url)}
    records: list[PaperRecord] = []
    warnings: list[str] = []
    async with services.fetchers.open(hosts) as fetcher:
        for start in range(0, len(wanted), arxiv_api.PAGE_SIZE):
            chunk = wanted[start : start + arxiv_api.PAGE_SIZE]
            url = with_params(api_url, id_list=",".join(chunk))
            parsed, _requests, _status = await arxiv_query.read_pages(
                fetcher, url, source="arxiv-lookup", max_items=len(chunk)
            )
            if parsed.error:
                warnings.append(parsed.error)
            records.extend(parsed.records)
            warnings.extend(parsed.warnings)
    if records:
        # Seeds are reference data: stored so profiles can use them, never announced as new.
        with services.transaction() as tx:
            upsert_papers(
                tx, [replace(r, announce=LOOKUP) for r in records], now=now or services.clock()
            )
    error = warnings[0] if warnings and not records else None
    return ParseResult(records=tuple(records), warnings=tuple(warnings), error=error)
