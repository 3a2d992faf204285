"""The scheduler lease row: who may run the singleton jobs, until when.

One conditional UPDATE decides who holds it, so two workers racing for an expired lease cannot
both win (see usecases/leases.py for why the worker needs one).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from digest.models import SchedulerLease


def acquire(session: Session, *, name: str, holder: str, expires: datetime, now: datetime) -> bool:
    """Take or renew the lease; True when `holder` holds it until `expires`.

    The UPDATE matches only when the row is ours or has expired; the second of two racers
    re-checks the row after the first commits and finds it no longer expired.
    """
    maker = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        maker(SchedulerLease)
        .values(name=name, holder=holder, expires_at=now - timedelta(seconds=1), acquired_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    session.commit()
    current = session.exec(select(SchedulerLease.holder).where(SchedulerLease.name == name)).one()
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


def release(session: Session, *, name: str, holder: str) -> None:
    """Expire the lease at once if `holder` has it."""
    session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
        .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC))
    )
    session.commit()


def current(session: Session, name: str) -> SchedulerLease | None:
    return session.exec(select(SchedulerLease).where(SchedulerLease.name == name)).first()


def sqlite_lock_path(database_url: str) -> Path | None:
    """`<database>.worker.lock` for a SQLite file, None for other databases or :memory:."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database + ".worker.lock")
