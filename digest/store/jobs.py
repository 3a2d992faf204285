"""The leader's scheduled jobs: APScheduler's SQLAlchemy job store in the service's database.

The table persists each singleton job's next run time, so a fetch missed while no worker ran
still runs once when one comes back (see usecases/scheduler.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import select
from sqlmodel import Session

JOBS_TABLE = "apscheduler_jobs"


def job_store(session: Session) -> SQLAlchemyJobStore:
    """A job store on the session's engine: APScheduler opens its own connections from it."""
    return SQLAlchemyJobStore(engine=session.get_bind(), tablename=JOBS_TABLE)


def next_run_times(session: Session) -> dict[str, datetime | None]:
    """Each stored job's next run time (None for a paused job); creates the table if missing."""
    store = job_store(session)
    engine = session.get_bind()
    store.jobs_t.create(engine, checkfirst=True)
    with engine.connect() as connection:
        rows = connection.execute(select(store.jobs_t.c.id, store.jobs_t.c.next_run_time)).all()
    return {
        job_id: datetime.fromtimestamp(stamp, UTC) if stamp is not None else None
        for job_id, stamp in rows
    }
