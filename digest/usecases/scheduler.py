"""The worker: scheduled fetches and editions, and sending each subscriber's digest on time.

Two APScheduler 3.x schedulers per worker process, on purpose:

* A *local* BackgroundScheduler (MemoryJobStore) in every worker runs `send-due` every minute
  and `lease` (renew or take the scheduler lease). Sending is safe in parallel (rows are claimed
  with FOR UPDATE SKIP LOCKED), so every worker sends; nothing of it needs to survive a restart.
* A *leader* BackgroundScheduler with a SQLAlchemyJobStore (store/jobs.py) in the service's own
  database runs the singleton jobs `fetch`, `trending` and `plan-edition`, and only while this
  worker holds the lease (digest.usecases.leases). The persistent store is what makes a missed
  01:30 fetch run once when a worker comes back at 03:00; a MemoryJobStore would recompute
  "next 01:30" and skip the day. The lease keeps the store unshared, which APScheduler requires
  (FAQ: "You can't").

Every singleton job has an explicit id, replace_existing=True, coalesce=True, max_instances=1
and a misfire grace of hours (the default of 1 s silently skips a day). Re-adding a job at start
would overwrite a persisted, overdue next_run_time, so an overdue one is carried over.
The jobs themselves, each external call under a total deadline that a stop (SIGTERM) cancels,
are in worker_jobs.py; this module decides when they run and who runs them.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest.store import jobs as job_tables
from digest.store.jobs import JOBS_TABLE
from digest.usecases import leases
from digest.usecases.worker_jobs import DeadlineExceeded, Fetch, WorkerJobs

if TYPE_CHECKING:
    from digest.bootstrap import Services

__all__ = [
    "JOBS_TABLE",
    "LEADER_JOBS",
    "DeadlineExceeded",
    "Worker",
    "leader_triggers",
    "overdue_run_times",
    "run_leader_job",
    "run_worker",
]

log = logging.getLogger("digest.worker")

LEADER_JOBS = ("fetch", "trending", "plan-edition")
# Job functions are stored in the job table by reference; they find their worker here.
_WORKERS: weakref.WeakValueDictionary[str, Worker] = weakref.WeakValueDictionary()


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


class Worker(WorkerJobs):
    """One worker process's schedulers, lease and send loop. start(), then stop() (or a signal)."""

    def __init__(
        self,
        services: Services,
        *,
        name: str | None = None,
        clock: Callable[[], datetime] | None = None,
        send_clock: Callable[[], datetime] | None = None,
        triggers: dict[str, BaseTrigger] | None = None,
        send_interval_s: float | None = None,
        lease_interval_s: float | None = None,
        fetch: Fetch | None = None,
        run_scheduler: bool = True,
    ) -> None:
        super().__init__(services, name=name, clock=clock, send_clock=send_clock, fetch=fetch)
        config = services.settings.scheduler
        self.triggers = triggers or leader_triggers(services)
        self.send_interval_s = send_interval_s or config.send_interval_s
        self.lease_interval_s = lease_interval_s or max(config.lease_s / 3, 0.05)
        self.run_scheduler = run_scheduler
        self.durations: dict[str, list[float]] = {}
        self.handovers = 0
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
        self.expire_past_editions()
        local = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        now = datetime.now(UTC)  # APScheduler's own (real) clock
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
                leases.release(self.services, holder=self.name)
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
        return until is not None and self.services.clock() < until and not self._stop.is_set()

    # -- the lease and the leader's scheduler ---------------------------------------------------

    def renew_lease(self) -> None:
        """Take or keep the scheduler lease; start or stop the singleton jobs to match."""
        if self._stop.is_set():
            return
        ttl = self.services.settings.scheduler.lease_s
        now = self.services.clock()
        try:
            held = leases.acquire(self.services, holder=self.name, ttl_s=ttl, now=now)
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
            self.expire_past_editions()
            with self.services.reading() as tx:
                store = job_tables.job_store(tx)
            # APScheduler runs on the real clock: its persisted run times are compared with it.
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
        started = time.monotonic()
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
        seconds = time.monotonic() - started
        self.durations.setdefault(job_id, []).append(seconds)
        log.info("job=%s worker=%s seconds=%.1f", job_id, self.name, seconds)


def overdue_run_times(services: Services, now: datetime) -> dict[str, datetime]:
    """Persisted next run times already past: re-adding the job must not overwrite them."""
    with services.reading() as tx:
        stored = job_tables.next_run_times(tx)
    return {
        job_id: when
        for job_id, when in stored.items()
        if when is not None and job_id in LEADER_JOBS and when <= now
    }


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
