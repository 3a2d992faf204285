"""What one source run did, and how it is kept: papers merged, the outcome in its feed state.

Each write is its own unit of work, so a source whose rows fail still records why, and the
database being down still yields a report instead of an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from digest.sources.base import ParseResult
from digest.sources.xmlfeed import one_line
from digest.store import feeds
from digest.usecases.paper_merge import upsert_papers

if TYPE_CHECKING:
    from digest.bootstrap import Services

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
    services: Services,
    report: SourceReport,
    *,
    now: datetime,
    url: str | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
) -> None:
    """Write one source's outcome (and any new conditional-GET validators) into its feed state."""
    with services.transaction() as tx:
        feeds.record_fetch(
            tx,
            report.source,
            now=now,
            status=report.status,
            error=one_line(report.error) if report.error else None,
            fetched=report.fetched,
            new=report.new,
            updated=report.changed,
            succeeded=report.status in SUCCESSFUL,
            url=url,
            etag=etag,
            last_modified=last_modified,
        )


def store_result(
    services: Services,
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
            with services.transaction() as tx:
                counts = upsert_papers(tx, records, now=now)
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
    # Validators only move forward on a usable body, so a bad fetch is retried in full.
    keep = report.status in (OK, PARTIAL, EMPTY)
    try:
        record_feed_state(
            services,
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


def fail(services: Services, report: SourceReport, reason: str, *, now: datetime, url: str) -> None:
    """Mark the source failed for `reason` and record it; never raises."""
    report.status = FAILED
    report.error = one_line(reason)
    report.errors += 1
    try:
        record_feed_state(services, report, now=now, url=url)
    except Exception as exc:  # the database itself is down: still report, never raise
        report.warnings.append(f"FeedState not recorded: {one_line(exc)}")
