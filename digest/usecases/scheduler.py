"""The worker: scheduled fetches and editions, and sending each subscriber's digest on time.

Two APScheduler 3.x schedulers per worker process, on purpose:

* A *local* BackgroundScheduler (MemoryJobStore) in every worker runs `send-due` every minute
  and `lease` (renew or take the scheduler lease). Sending is safe in parallel (rows are claimed
  with FOR UPDATE SKIP LOCKED), so every worker sends; nothing of it needs to survive a restart.
* A *leader* BackgroundScheduler with a SQLAlchemyJobStore in the service's own database runs
  the singleton jobs `fetch`, `trending` and `plan-edition`, and only while this worker holds
  the lease (digest.usecases.leases). The persistent store is what makes a missed 01:30 fetch
  run once when a worker comes back at 03:00; a MemoryJobStore would recompute "next 01:30" and
  skip the day. The lease keeps the store unshared, which APScheduler requires (FAQ: "You can't").

Every singleton job has an explicit id, replace_existing=True, coalesce=True, max_instances=1
and a misfire grace of hours (the default of 1 s silently skips a day). Re-adding a job at start
would overwrite a persisted, overdue next_run_time, so an overdue one is carried over.
Every external call runs under a total deadline, and a stop (SIGTERM) cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlmodel import Session

from digest import timetable
from digest.bootstrap import Services
from digest.models import utcnow
from digest.store import deliveries as ledger
from digest.store import schedule as schedule_store
from digest.usecases import leases
from digest.usecases.editions import SendReport, default_worker_name, plan_edition, send_edition

log = logging.getLogger("digest.worker")

JOBS_TABLE = "apscheduler_jobs"
LEADER_JOBS = ("fetch", "trending", "plan-edition")
# Job functions are stored in the job table by reference; they find their worker here.
_WORKERS: weakref.WeakValueDictionary[str, Worker] = weakref.WeakValueDictionary()

Fetch = Callable[..., Awaitable[Any]]


class DeadlineExceeded(Exception):
    """An external call ran past its total deadline and was cancelled."""


def leader_triggers(services: Services) -> dict[str, BaseTrigger]:
    """The singleton jobs' triggers from settings (UTC)."""
    config = services.settings.scheduler
    return {
        "fetch": CronTrigger.from_crontab(config.fetch_cron, timezone=UTC),
        "trending": CronTrigger.from_crontab(config.trending_cron, timezone=UTC),
        "plan-edition": CronTrigger(hour=config.edition_hour, minute=0, timezone=UTC),
    }


def run_leader_job(job_id: str, worker: str) -> None:
    """Entry point stored in the job table: dispatch to the live worker that holds the lease."""
    target = _WORKERS.get(worker) or next((w for w in _WORKERS.values() if w.is_leader), None)
    if target is None:
        log.warning("job=%s skipped: no live worker in this process", job_id)
        return
    target.run_job(job_id)


class Worker:
    """One worker process's schedulers, lease and send loop. start(), then stop() (or a signal)."""

    def __init__(
        self,
        services: Services,
        *,
        name: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        send_clock: Callable[[], datetime] | None = None,
        triggers: dict[str, BaseTrigger] | None = None,
        send_interval_s: float | None = None,
        lease_interval_s: float | None = None,
        fetch: Fetch | None = None,
        run_scheduler: bool = True,
    ) -> None:
        config = services.settings.scheduler
        self.services = services
        self.name = name or default_worker_name()
        # `clock` decides which edition is current and who is due; `send_clock` stamps claims
        # and their lease. Tests compress the first; leases stay in real seconds.
        self.clock = clock
        self.send_clock = send_clock or clock
        self.triggers = triggers or leader_triggers(services)
        self.send_interval_s = send_interval_s or config.send_interval_s
        self.lease_interval_s = lease_interval_s or max(config.lease_s / 3, 0.05)
        self.fetch = fetch
        self.run_scheduler = run_scheduler
        self.runs: Counter[str] = Counter()
        self.durations: dict[str, list[float]] = {}
        self.reports: list[SendReport] = []
        self.handovers = 0
        self._stop = threading.Event()
        self._leader_lock = threading.Lock()
        self._leader: BackgroundScheduler | None = None
        self._leader_until: datetime | None = None
        self._local: BackgroundScheduler | None = None
        self._file_lock: leases.FileLock | None = None
        _WORKERS[self.name] = self

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Refuse a second worker on SQLite, then start sending and competing for the lease."""
        path = leases.sqlite_lock_path(self.services.settings.database_url)
        if path is not None:
            lock = leases.FileLock(path)
            lock.acquire()  # raises WorkerLockError with a one-line reason
            self._file_lock = lock
        self._expire_past_editions()
        local = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        now = datetime.now(UTC)
        if self.run_scheduler:
            local.add_job(
                self.renew_lease,
                IntervalTrigger(seconds=self.lease_interval_s, timezone=UTC),
                id="lease",
                replace_existing=True,
                next_run_time=now,
            )
        local.add_job(
            self.send_due,
            IntervalTrigger(seconds=self.send_interval_s, timezone=UTC),
            id="send-due",
            replace_existing=True,
            next_run_time=now,
        )
        local.start()
        self._local = local
        log.info("worker=%s started", self.name)

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Stop claiming, let in-flight messages finish (unsent claims are released), give up
        the lease so another worker takes over at once, and release the SQLite lock."""
        self._stop.set()
        if self._local is not None:
            self._local.shutdown(wait=True)
            self._local = None
        self._stop_leader()
        if self.run_scheduler:
            try:
                leases.release(self.services.engine, holder=self.name)
            except Exception as exc:  # the database may be the reason we are stopping
                log.warning("worker=%s lease release failed: %s", self.name, exc)
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None
        log.info("worker=%s stopped", self.name)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stop() is called (or timeout); True when stopped."""
        return self._stop.wait(timeout)

    @property
    def is_leader(self) -> bool:
        until = self._leader_until
        return until is not None and datetime.now(UTC) < until and not self._stop.is_set()

    # -- the lease and the leader's scheduler ---------------------------------------------------

    def renew_lease(self) -> None:
        """Take or keep the scheduler lease; start or stop the singleton jobs to match."""
        if self._stop.is_set():
            return
        ttl = self.services.settings.scheduler.lease_s
        now = datetime.now(UTC)
        try:
            held = leases.acquire(self.services.engine, holder=self.name, ttl_s=ttl, now=now)
        except Exception as exc:  # database unreachable: we cannot prove we still hold it
            log.warning("worker=%s lease check failed: %s", self.name, exc)
            held = False
        if held:
            self._leader_until = now + timedelta(seconds=ttl)
            if self._leader is None:
                self._start_leader()
        else:
            self._leader_until = None
            self._stop_leader()

    def _start_leader(self) -> None:
        with self._leader_lock:
            if self._leader is not None or self._stop.is_set():
                return
            self.handovers += 1
            log.info("worker=%s took the scheduler lease", self.name)
            self._expire_past_editions()
            store = SQLAlchemyJobStore(engine=self.services.engine, tablename=JOBS_TABLE)
            overdue = overdue_run_times(self.services, datetime.now(UTC))
            scheduler = BackgroundScheduler(
                jobstores={"default": store},
                executors={"default": ThreadPoolExecutor(len(LEADER_JOBS))},
                job_defaults=self.job_defaults(),
                timezone=UTC,
            )
            for job_id in LEADER_JOBS:
                extra = {"next_run_time": overdue[job_id]} if job_id in overdue else {}
                scheduler.add_job(
                    run_leader_job,
                    self.triggers[job_id],
                    id=job_id,
                    name=job_id,
                    kwargs={"job_id": job_id, "worker": self.name},
                    replace_existing=True,
                    **self.job_defaults(),
                    **extra,
                )
            scheduler.start()
            self._leader = scheduler

    def _stop_leader(self) -> None:
        with self._leader_lock:
            scheduler, self._leader = self._leader, None
        if scheduler is not None:
            log.info("worker=%s left the scheduler role", self.name)
            scheduler.shutdown(wait=True)

    def job_defaults(self) -> dict[str, Any]:
        """coalesce + a grace of hours: a worker back 2 h late runs the day's job exactly once."""
        return {
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(self.services.settings.scheduler.misfire_grace_s),
        }

    def leader_jobs(self) -> list[Any]:
        """The singleton jobs as scheduled now (empty when not the leader)."""
        scheduler = self._leader
        return scheduler.get_jobs() if scheduler is not None else []

    # -- the jobs ----------------------------------------------------------------------------

    def run_job(self, job_id: str) -> None:
        """Run one singleton job, only while we still hold the lease."""
        if not self.is_leader:
            log.warning("job=%s skipped: worker=%s no longer holds the lease", job_id, self.name)
            return
        self.runs[job_id] += 1
        started = datetime.now(UTC)
        try:
            if job_id == "fetch":
                self.fetch_sources(kinds=None)
            elif job_id == "trending":
                self.fetch_sources(kinds={"hf-daily"})
            elif job_id == "plan-edition":
                self.plan_current()
        except DeadlineExceeded as exc:
            log.error("job=%s deadline: %s", job_id, exc)
        except Exception:
            log.exception("job=%s failed", job_id)
        seconds = (datetime.now(UTC) - started).total_seconds()
        self.durations.setdefault(job_id, []).append(seconds)
        log.info("job=%s worker=%s seconds=%.1f", job_id, self.name, seconds)

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
            fetch(settings, self.services.engine, http=self.services.http),
            deadline_s=settings.scheduler.fetch_deadline_s,
        )
        if kinds is None and self.fetch is None:
            from digest.usecases.seeds import retry_missing

            # Seeds an earlier lookup could not fetch: tried again with the day's fetch.
            try:
                self.run_async(
                    retry_missing(self.services, http=self.services.http),
                    deadline_s=settings.scheduler.fetch_deadline_s,
                )
            except Exception:  # never costs the day's fetch; the seeds wait for the next one
                log.exception("seeds.retry_failed")
        return reports

    def plan_current(self) -> tuple[int, bool]:
        """Create the current edition (idempotent: the date is unique) and close past ones."""
        now = self.clock()
        hour = self.services.settings.scheduler.edition_hour
        edition_date = timetable.edition_date_at(now, hour)
        _, send_by = timetable.edition_window(edition_date, hour)
        self._expire_past_editions(now)
        with Session(self.services.engine, expire_on_commit=False) as session:
            edition, created = ledger.get_or_create_edition(
                session, edition_date=edition_date, send_by=send_by
            )
            session.commit()
        if created:
            log.info("edition=%s planned send_by=%s", edition_date, send_by.isoformat())
        return edition.id, created

    def send_due(self) -> SendReport | None:
        """Plan the subscribers whose delivery moment has come, then send what is claimable."""
        if self._stop.is_set():
            return None
        settings = self.services.settings
        now = self.clock()
        self._expire_past_editions(now)
        edition, new = plan_edition(self.services, now=now, due_only=True)
        edition_date = edition.edition_date
        with Session(self.services.engine, expire_on_commit=False) as session:
            sendable = schedule_store.has_sendable(
                session, edition.id, now=self.send_clock(), lease_s=settings.delivery.lease_s
            )
        if new:
            log.info("edition=%s planned=%d worker=%s", edition_date, new, self.name)
        if not sendable:
            return None
        deadline = datetime.now(UTC).timestamp() + settings.scheduler.send_deadline_s

        def stop_sending() -> bool:
            # Past the deadline the run stops claiming; the next tick carries on.
            return self._stop.is_set() or datetime.now(UTC).timestamp() > deadline

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

    def _expire_past_editions(self, now: datetime | None = None) -> None:
        with Session(self.services.engine, expire_on_commit=False) as session:
            for edition, rows in schedule_store.expire_past_editions(
                session, now=now or self.clock()
            ):
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


def overdue_run_times(services: Services, now: datetime) -> dict[str, datetime]:
    """Persisted next run times already past: re-adding the job must not overwrite them."""
    store = SQLAlchemyJobStore(engine=services.engine, tablename=JOBS_TABLE)
    store.jobs_t.create(services.engine, checkfirst=True)
    with services.engine.connect() as connection:
        rows = connection.execute(select(store.jobs_t.c.id, store.jobs_t.c.next_run_time)).all()
    overdue = {}
    for job_id, timestamp in rows:
        if timestamp is not None and job_id in LEADER_JOBS:
            when = datetime.fromtimestamp(timestamp, UTC)
            if when <= now:
                overdue[job_id] = when
    return overdue


def run_worker(services: Services, *, install_signals: bool = True, **options: Any) -> int:
    """Run a worker until SIGTERM/SIGINT; returns the exit code (0 on a graceful stop)."""
    import signal

    worker = Worker(services, **options)
    if install_signals:

        def on_signal(signum: int, _frame: Any) -> None:
            log.info("worker=%s got signal %d: stopping", worker.name, signum)
            worker._stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    worker.start()
    try:
        while not worker.wait(1.0):
            pass
    finally:
        worker.stop()
    return 0
