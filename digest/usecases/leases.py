"""Who may run the singleton jobs: a database lease, and on SQLite a lock file for the worker.

APScheduler 3.x must never run the same jobs in two processes (its FAQ: "You can't" share a job
store). On PostgreSQL any number of workers start; the one holding the `scheduler` lease row runs
the scheduled jobs and renews the lease; if it dies the row expires and another worker takes it
with the same conditional UPDATE. On SQLite only one worker may run at all, enforced by an
exclusive lock on a file next to the database that the kernel drops when the process dies, even
on kill -9, so a crashed worker never blocks its replacement.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from digest.models import SchedulerLease
from digest.store import leases as lease_store

if TYPE_CHECKING:
    from digest.bootstrap import Services

SCHEDULER = "scheduler"


class WorkerLockError(Exception):
    """Another worker already runs against this SQLite database."""


def acquire(
    services: Services, *, holder: str, ttl_s: float, now: datetime, name: str = SCHEDULER
) -> bool:
    """Take or renew the lease; True when `holder` holds it until now + ttl_s."""
    with services.reading() as tx:
        return lease_store.acquire(
            tx, name=name, holder=holder, expires=now + timedelta(seconds=ttl_s), now=now
        )


def release(services: Services, *, holder: str, name: str = SCHEDULER) -> None:
    """Give the lease up at once (graceful stop), so the next worker need not wait it out."""
    with services.reading() as tx:
        lease_store.release(tx, name=name, holder=holder)


def current(services: Services, name: str = SCHEDULER) -> SchedulerLease | None:
    """The lease row as stored (holder and expiry), or None when nobody ever held it."""
    with services.reading() as tx:
        return lease_store.current(tx, name)


def sqlite_lock_path(database_url: str) -> Path | None:
    """`<database>.worker.lock` for a SQLite file, None for other databases or :memory:."""
    return lease_store.sqlite_lock_path(database_url)


class FileLock:
    """An exclusive, non-blocking flock; released by close() or by the process dying."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = self.path.read_text(encoding="utf-8").strip() or "another process"
            raise WorkerLockError(
                f"another worker ({holder}) is already running on this SQLite database; "
                "SQLite allows one worker (use PostgreSQL for several)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
