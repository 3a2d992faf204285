"""The jobs a worker runs: fetch the sources, plan the current edition, send what is due, and
close past editions; every external call under a total deadline that a stop also cancels.

The worker's life cycle, its lease and its schedulers are in scheduler.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from digest import timetable
from digest.store import deliveries as ledger
from digest.store import editions as edition_store
from digest.usecases import edition_states
from digest.usecases.editions import SendReport, default_worker_name, plan_edition, send_edition

if TYPE_CHECKING:
    from digest.bootstrap import Services

log = logging.getLogger("digest.worker")

Fetch = Callable[..., Awaitable[Any]]


class DeadlineExceeded(Exception):
    """An external call ran past its total deadline and was cancelled."""


class WorkerJobs:
    """What one worker does, job by job; Worker (scheduler.py) decides when."""

    def __init__(
        self,
        services: Services,
        *,
        name: str | None = None,
        clock: Callable[[], datetime] | None = None,
        send_clock: Callable[[], datetime] | None = None,
        fetch: Fetch | None = None,
    ) -> None:
        self.services = services
        self.name = name or default_worker_name()
        # `clock` decides which edition is current and who is due; `send_clock` stamps claims
        # and their lease. Tests compress the first; leases stay in real seconds.
        self.clock = clock or services.clock
        self.send_clock = send_clock or self.clock
        self.fetch = fetch
        self.runs: Counter[str] = Counter()
        self.reports: list[SendReport] = []
        self._stop = threading.Event()

    def fetch_sources(self, *, kinds: set[str] | None) -> Any:
        """Fetch sources (all, or only these kinds) under the job's total deadline."""
        from digest.usecases.ingest import fetch_sources

        settings = self.services.settings
        if kinds is not None:
            settings = settings.model_copy(
                update={"sources": tuple(s for s in settings.sources if s.kind in kinds)}
            )
            if not settings.sources:
                return []
        fetch = self.fetch or fetch_sources
        reports = self.run_async(
            fetch(replace(self.services, settings=settings)),
            deadline_s=settings.scheduler.fetch_deadline_s,
        )
        if kinds is None and self.fetch is None:
            from digest.usecases.seeds import retry_missing

            # Seeds an earlier lookup could not fetch: tried again with the day's fetch.
            try:
                self.run_async(
                    retry_missing(replace(self.services, settings=settings)),
                    deadline_s=settings.scheduler.fetch_deadline_s,
                )
            except Exception:  # never costs the day's fetch; the seeds wait for the next one
                log.exception("seeds.retry_failed")
        self.embed_new_papers(deadline_s=settings.scheduler.fetch_deadline_s)
        return reports

    def embed_new_papers(self, *, deadline_s: float) -> int:
        """Embed what the fetch brought, so the morning's edition does not wait on the encoder.
        Best effort: what a stop, the deadline or an error leaves, the edition embeds."""
        from digest.usecases.paper_embeddings import embed_recent_papers

        deadline = time.monotonic() + deadline_s
        try:
            count = embed_recent_papers(
                self.services,
                now=self.clock(),
                should_stop=lambda: self._stop.is_set() or time.monotonic() > deadline,
            )
        except Exception:
            log.exception("embed.failed")
            return 0
        if count:
            log.info("embedded=%d papers stored", count)
        return count

    def plan_current(self) -> tuple[int, bool]:
        """Create the current edition (idempotent: the date is unique) and close past ones."""
        now = self.clock()
        hour = self.services.settings.scheduler.edition_hour
        edition_date = timetable.edition_date_at(now, hour)
        _, send_by = timetable.edition_window(edition_date, hour)
        self.expire_past_editions(now)
        with self.services.transaction() as tx:
            edition, created = edition_store.get_or_create_edition(
                tx, edition_date=edition_date, send_by=send_by
            )
        if created:
            log.info("edition=%s planned send_by=%s", edition_date, send_by.isoformat())
        return edition.id, created

    def send_due(self) -> SendReport | None:
        """Plan the subscribers whose delivery moment has come, then send what is claimable."""
        if self._stop.is_set():
            return None
        settings = self.services.settings
        now = self.clock()
        self.expire_past_editions(now)
        edition, new = plan_edition(self.services, now=now, due_only=True)
        edition_date = edition.edition_date
        with self.services.reading() as tx:
            sendable = ledger.has_sendable(
                tx, edition.id, now=self.send_clock(), lease_s=settings.delivery.lease_s
            )
        if new:
            log.info("edition=%s planned=%d worker=%s", edition_date, new, self.name)
        if not sendable:
            return None
        deadline = time.monotonic() + settings.scheduler.send_deadline_s

        def stop_sending() -> bool:
            # Past the deadline the run stops claiming; the next tick carries on.
            return self._stop.is_set() or time.monotonic() > deadline

        report = self.run_async(
            send_edition(
                self.services,
                edition,
                now=now,
                worker=self.name,
                clock=self.send_clock,
                should_stop=stop_sending,
            ),
            # In-flight messages are bounded by the SMTP timeout; allow for them after the
            # soft deadline before cancelling (a cancelled claim is resumed after its lease).
            deadline_s=settings.scheduler.send_deadline_s + 2 * settings.smtp.timeout_s,
            cancel_on_stop=False,
        )
        self.runs["send-due"] += 1
        self.reports.append(report)
        if report.held:
            log.warning("edition=%s %s; nothing sent", edition_date, report.held)
        log.info(
            "edition=%s worker=%s sent=%d deferred=%d failed=%d skipped=%d nothing_new=%d "
            "expired=%d",
            edition_date,
            self.name,
            report.sent,
            report.deferred,
            report.failed,
            report.skipped,
            report.nothing_new,
            report.expired,
        )
        return report

    def expire_past_editions(self, now: datetime | None = None) -> None:
        with self.services.transaction() as tx:
            for edition, rows in edition_states.expire_past(tx, now=now or self.clock()):
                log.warning(
                    "edition.expired edition=%s rows=%d (its window closed before it was sent)",
                    edition.edition_date,
                    rows,
                )

    def run_async(
        self, coro: Awaitable[Any], *, deadline_s: float, cancel_on_stop: bool = True
    ) -> Any:
        """Run a coroutine in this thread with a total deadline; a stop cancels it too."""
        return asyncio.run(self._bounded(coro, deadline_s, cancel_on_stop))

    async def _bounded(self, coro: Awaitable[Any], deadline_s: float, cancel_on_stop: bool) -> Any:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while not task.done():
            remaining = end - loop.time()
            if remaining <= 0 or (cancel_on_stop and self._stop.is_set()):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                if remaining <= 0:
                    raise DeadlineExceeded(f"gave up after {deadline_s:.1f}s")
                return None
            # Poll the stop flag a few times a second; asyncio.wait returns as soon as it ends.
            await asyncio.wait({task}, timeout=min(remaining, 0.2))
        return task.result()
