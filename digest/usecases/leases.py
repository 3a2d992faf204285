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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from digest.models import SchedulerLease

SCHEDULER = "scheduler"


class WorkerLockError(Exception):
    """Another worker already runs against this SQLite database."""


def acquire(
    engine: Engine, *, holder: str, ttl_s: float, now: datetime, name: str = SCHEDULER
) -> bool:
    """Take or renew the lease; True when `holder` holds it until now + ttl_s.

    One conditional UPDATE decides: it matches only when the row is ours or has expired, so two
    workers racing for an expired lease cannot both win (the second UPDATE re-checks the row
    after the first commits and finds it no longer expired).
    """
    expires = now + timedelta(seconds=ttl_s)
    with Session(engine) as session:
        maker = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        session.execute(
            maker(SchedulerLease)
            .values(
                name=name, holder=holder, expires_at=now - timedelta(seconds=1), acquired_at=now
            )
            .on_conflict_do_nothing(index_elements=["name"])
        )
        session.commit()
        current = session.exec(
            select(SchedulerLease.holder).where(SchedulerLease.name == name)
        ).one()
        values: dict[str, object] = {"holder": holder, "expires_at": expires}
        if current != holder:
            values["acquired_at"] = now
        result = session.execute(
            update(SchedulerLease)
            .where(
                SchedulerLease.name == name,
                or_(SchedulerLease.holder == holder, SchedulerLease.expires_at < now),
            )
            .values(**values)
        )
        session.commit()
        return bool(result.rowcount)


def release(engine: Engine, *, holder: str, name: str = SCHEDULER) -> None:
    """Give the lease up at once (graceful stop), so the next worker need not wait it out."""
    with Session(engine) as session:
        session.execute(
            update(SchedulerLease)
            .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
            .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC))
        )
        session.commit()


def current(engine: Engine, name: str = SCHEDULER) -> SchedulerLease | None:
    """The lease row as stored (holder and expiry), or None when nobody ever held it."""
    with Session(engine, expire_on_commit=False) as session:
        return session.exec(select(SchedulerLease).where(SchedulerLease.name == name)).first()


def sqlite_lock_path(database_url: str) -> Path | None:
    """`<database>.worker.lock` for a SQLite file, None for other databases or :memory:."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database + ".worker.lock")


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
