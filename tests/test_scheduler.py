"""The worker's scheduler (RELIABILITY A1, A3, A4, A5, A6): misfires, replays, DST, deadlines.

Real parts: APScheduler with its SQLAlchemy job store in the test database (SQLite file and,
where configured, PostgreSQL), the aiosmtpd sink, and a TCP server that never answers. Clocks are
injected or compressed; nothing sleeps longer than a few seconds.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select
from sqlmodel import Session, col

from digest import bootstrap, timetable
from digest.bootstrap import Services
from digest.db import make_engine, upgrade
from digest.models import Delivery, Edition, Subscriber
from digest.settings import (
    DeliverySettings,
    FetchSettings,
    SchedulerSettings,
    Settings,
    SmtpSettings,
    SourceSettings,
)
from digest.smtpd.sink import SinkHandler, SmtpSink
from digest.store import deliveries as ledger
from digest.store import editions as edition_store
from digest.usecases.leases import WorkerLockError
from digest.usecases.scheduler import JOBS_TABLE, LEADER_JOBS, Worker, run_leader_job
from tests.worker_helpers import add_papers, add_subscribers, message_ids

DIGEST_BIN = str(Path(sys.executable).with_name("digest"))


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def db_services(database_url: str, smtp_sink: SmtpSink) -> Iterator[Services]:
    """Services on SQLite and (where configured) PostgreSQL, sending to the sink."""
    settings = Settings(
        mode="dev",
        database_url=database_url,
        smtp=SmtpSettings(host=smtp_sink.host, port=smtp_sink.port, timeout_s=10),
        delivery=DeliverySettings(backoff_base_s=1.0),
        scheduler=SchedulerSettings(lease_s=3.0),
    )
    built = bootstrap.build(settings, engine=make_engine(database_url))
    upgrade(built.engine)
    yield built
    built.close()


def seed_job(services: Services, job_id: str, next_run_time: datetime) -> None:
    """Persist a job as a worker that went down would have left it: due at `next_run_time`."""
    worker = Worker(services, name="gone")
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=services.engine, tablename=JOBS_TABLE)},
        timezone=UTC,
    )
    scheduler.start(paused=True)  # paused: the job is stored, never run here
    scheduler.add_job(
        run_leader_job,
        worker.triggers[job_id],
        id=job_id,
        kwargs={"job_id": job_id, "worker": "gone"},
        next_run_time=next_run_time,
        replace_existing=True,
        **worker.job_defaults(),
    )
    # Detach the store before shutting down: a stopping scheduler still processes its jobs
    # once, which would move the overdue next_run_time we just stored.
    scheduler.remove_jobstore("default")
    scheduler.shutdown(wait=False)


def test_guard_misfire_grace_and_coalesce(services: Services) -> None:
    """The default grace of 1 s skips a day's digest after a short outage; ours is hours."""
    assert services.settings.scheduler.misfire_grace_s >= 3600
    worker = Worker(services)
    worker.start()
    try:
        assert wait_until(lambda: len(worker.leader_jobs()) == len(LEADER_JOBS))
        for job in worker.leader_jobs():
            assert job.misfire_grace_time >= 3600, job.id
            assert job.coalesce is True, job.id
            assert job.max_instances == 1, job.id
    finally:
        worker.stop()


@pytest.mark.parametrize("late", [timedelta(minutes=5, seconds=30), timedelta(hours=2)])
def test_a1_overdue_job_runs_exactly_once(db_services: Services, late: timedelta) -> None:
    seed_job(db_services, "plan-edition", datetime.now(UTC) - late)
    worker = Worker(db_services, fetch=_no_fetch)
    worker.start()
    try:
        assert wait_until(lambda: worker.runs["plan-edition"] >= 1)
        time.sleep(1.0)  # room for a second (wrong) run to show up
        assert worker.runs["plan-edition"] == 1
        job = next(j for j in worker.leader_jobs() if j.id == "plan-edition")
        assert job.next_run_time > datetime.now(UTC)
    finally:
        worker.stop()


def test_a1_restart_after_next_edition_expires_the_old(
    db_services: Services, caplog: pytest.LogCaptureFixture, smtp_sink: SmtpSink
) -> None:
    """Back 30 h late: yesterday's unsent rows are expired, never mailed late."""
    now = datetime.now(UTC)
    hour = db_services.settings.scheduler.edition_hour
    old_date = timetable.edition_date_at(now - timedelta(hours=30), hour)
    ids = add_subscribers(db_services.engine, 5)
    with Session(db_services.engine) as session:
        old, _ = edition_store.get_or_create_edition(
            session, edition_date=old_date, send_by=timetable.edition_window(old_date, hour)[1]
        )
        ledger.plan_deliveries(session, edition_id=old.id, subscriber_ids=ids)
        session.commit()
        old_id = old.id
    seed_job(db_services, "plan-edition", now - timedelta(hours=30))
    caplog.set_level(logging.WARNING, logger="digest.worker")
    worker = Worker(db_services, fetch=_no_fetch)
    worker.start()
    try:
        assert wait_until(lambda: worker.runs["send-due"] >= 1 or worker.is_leader)
        time.sleep(1.0)
    finally:
        worker.stop()
    with Session(db_services.engine) as session:
        assert session.get(Edition, old_id).status == "expired"
        counts = ledger.state_counts(session, old_id)
        dates = set(session.scalars(select(Edition.edition_date)).all())
    assert counts == {"expired": 5}
    assert "edition.expired" in caplog.text
    # The plan job may run once for *today's* edition; it never re-creates the old one.
    assert worker.runs["plan-edition"] <= 1
    assert dates <= {old_date, timetable.edition_date_at(datetime.now(UTC), hour)}
    old_ids = [m for m in message_ids(x.data for x in smtp_sink.messages) if f"{old_id}." in m]
    assert not [m for m in old_ids if m.startswith(f"<edition-{old_id}.")]


def test_a3_replaying_a_day_sends_nothing_new(db_services: Services, smtp_sink: SmtpSink) -> None:
    now = datetime.now(UTC)
    add_papers(db_services.engine, now=now)
    ids = add_subscribers(db_services.engine, 12, hour=now.hour)
    worker = Worker(db_services, clock=lambda: now)
    # A crash before the first run: five rows claimed by a worker that died long ago.
    hour = db_services.settings.scheduler.edition_hour
    edition_date = timetable.edition_date_at(now, hour)
    with Session(db_services.engine) as session:
        edition, _ = edition_store.get_or_create_edition(
            session,
            edition_date=edition_date,
            send_by=timetable.edition_window(edition_date, hour)[1],
        )
        ledger.plan_deliveries(session, edition_id=edition.id, subscriber_ids=ids)
        session.commit()
        ledger.claim_batch(
            session,
            edition_id=edition.id,
            worker="dead",
            limit=5,
            now=now - timedelta(hours=1),
            lease_s=db_services.settings.delivery.lease_s,
        )
    first = worker.send_due()
    second = worker.send_due()
    third = worker.send_due()
    assert first is not None and first.sent == 12
    assert second is None and third is None  # nothing left to claim: nothing sent
    counts = message_ids(m.data for m in smtp_sink.messages)
    assert len(counts) == 12 and max(counts.values()) == 1
    with Session(db_services.engine) as session:
        assert session.scalar(select(func.count()).select_from(Edition)) == 1


def _no_fetch(*_args: object, **_kwargs: object) -> object:
    async def nothing() -> list[object]:
        return []

    return nothing()


class StepClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


DST_CASES = [
    # zone, first local date, days, local hours of the subscribers
    ("Europe/Berlin", date(2026, 3, 28), 3, (2, 7)),
    ("Europe/Berlin", date(2026, 10, 24), 3, (2, 7)),
    ("America/New_York", date(2026, 3, 7), 3, (1, 2, 7)),
    ("America/New_York", date(2026, 10, 31), 3, (1, 2, 7)),
]


@pytest.mark.parametrize(("zone", "first", "days", "hours"), DST_CASES)
def test_a4_dst_one_delivery_per_local_day(
    services: Services, zone: str, first: date, days: int, hours: tuple[int, ...]
) -> None:
    tz = ZoneInfo(zone)
    midnight = datetime.combine(first, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(first + timedelta(days=days), datetime.min.time(), tzinfo=tz)
    # Start when the edition holding local midnight starts: a worker that starts later catches
    # up that window's earlier moments (correctly), which would count twice on the first day.
    hour = services.settings.scheduler.edition_hour
    begin = timetable.edition_start(timetable.edition_date_at(midnight, hour), hour)
    clock = StepClock(begin)
    add_papers(services.engine, now=begin)
    for local_hour in hours:
        add_subscribers(
            services.engine, 1, prefix=f"daily{local_hour}-", timezone=zone, hour=local_hour
        )
    add_subscribers(
        services.engine, 1, prefix="weekdays-", timezone=zone, hour=7, frequency="weekdays"
    )
    sunday = 6
    add_subscribers(
        services.engine,
        1,
        prefix="weekly-",
        timezone=zone,
        hour=7,
        frequency="weekly",
        weekly_day=sunday,
    )
    add_subscribers(services.engine, 1, prefix="paused-", timezone=zone, hour=7, frequency="paused")
    worker = Worker(services, clock=clock)
    started = time.monotonic()
    ticks = 0
    while clock.now < end:
        # A new paper every tick: a day with nothing new sends nothing (issue 15), and this
        # test is about delivery moments, not about what arrived.
        ticks += 1
        add_papers(services.engine, 1, now=clock.now + timedelta(hours=1), first=5 + ticks)
        tick = time.monotonic()
        worker.send_due()
        assert time.monotonic() - tick < 5, f"send cycle hung at {clock.now}"
        clock.now += timedelta(minutes=15)
    assert time.monotonic() - started < 60
    with Session(services.engine) as session:
        rows = session.exec(
            select(Subscriber.email, Delivery.sent_at)
            .join(Subscriber, col(Subscriber.id) == Delivery.subscriber_id)
            .where(Delivery.state == "sent")
        ).all()
    per_day: Counter[tuple[str, date]] = Counter()
    for address, sent_at in rows:
        per_day[(address.split("@")[0], sent_at.astimezone(tz).date())] += 1
    local_days = [first + timedelta(days=i) for i in range(days)]
    for local_hour in hours:
        for day in local_days:
            assert per_day[(f"daily{local_hour}-0", day)] == 1, (local_hour, day, per_day)
    for day in local_days:
        assert per_day[("weekdays-0", day)] == (1 if day.weekday() < 5 else 0), day
        assert per_day[("weekly-0", day)] == (1 if day.weekday() == sunday else 0), day
        assert per_day[("paused-0", day)] == 0
    # And at the subscriber's hour (the next 15-minute tick), not the evening before.
    for address, sent_at in rows:
        local = sent_at.astimezone(tz)
        wanted = int(address.split("-")[0].removeprefix("daily")) if "daily" in address else 7
        assert local.hour in (wanted, wanted + 1), (address, local)


def test_a5_hung_fetch_ends_at_its_deadline_and_the_next_run_happens(
    services: Services,
) -> None:
    """A feed that accepts the connection and never answers cannot block later runs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # accept, never reply
            except OSError:
                continue

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    settings = services.settings.model_copy(
        update={
            "sources": (
                SourceSettings(name="hangs", kind="feed", url=f"http://127.0.0.1:{port}/feed"),
            ),
            # No per-host spacing: with arXiv's 3 s between requests, a 1 s run could end
            # at its deadline while still waiting its turn, before reaching the server.
            "fetch": FetchSettings(
                read_timeout_s=60, deadline_s=60, retries=0, min_interval_per_host_s=0
            ),
            "scheduler": SchedulerSettings(fetch_deadline_s=1.0),
        }
    )
    hung = bootstrap.build(settings, engine=services.engine)
    triggers = {
        "fetch": IntervalTrigger(seconds=2, timezone=UTC),
        "trending": IntervalTrigger(hours=24, timezone=UTC),
        "plan-edition": IntervalTrigger(hours=24, timezone=UTC),
    }
    worker = Worker(hung, triggers=triggers)
    worker.start()
    try:
        assert wait_until(lambda: worker.runs["fetch"] >= 2 and len(held) >= 2, timeout=15)
    finally:
        worker.stop()
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
    durations = worker.durations["fetch"]
    assert len(durations) >= 2
    assert all(d < 1.0 + 1.5 for d in durations), durations
    assert len(held) >= 2  # each run really reached the hung server


def test_a6_restarts_leave_one_job_per_id(db_services: Services) -> None:
    for _ in range(5):
        worker = Worker(db_services, fetch=_no_fetch)
        worker.start()
        assert wait_until(lambda w=worker: len(w.leader_jobs()) == len(LEADER_JOBS))
        worker.stop()
    with db_services.engine.connect() as connection:
        table = SQLAlchemyJobStore(engine=db_services.engine, tablename=JOBS_TABLE).jobs_t
        rows = connection.execute(select(table.c.id)).scalars().all()
    assert sorted(rows) == sorted(LEADER_JOBS)


def test_sqlite_second_worker_refuses(services: Services) -> None:
    first = Worker(services, fetch=_no_fetch)
    first.start()
    try:
        second = Worker(services, fetch=_no_fetch)
        with pytest.raises(WorkerLockError, match="already running on this SQLite database"):
            second.start()
    finally:
        first.stop()
    again = Worker(services, fetch=_no_fetch)
    again.start()  # the lock went with the first worker
    again.stop()


def worker_env(database_url: str, sink: SmtpSink, **extra: str) -> dict[str, str]:
    """Settings for a `digest` subprocess, as DIGEST_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        DIGEST_MODE="dev",
        DIGEST_DATABASE_URL=database_url,
        DIGEST_SMTP_HOST=sink.host,
        DIGEST_SMTP_PORT=str(sink.port),
        DIGEST_SCHEDULER_LEASE_S="1",
        DIGEST_SCHEDULER_SEND_INTERVAL_S="0.5",
        **extra,
    )
    return env


class SlowHandler(SinkHandler):
    """A sink that takes a few milliseconds per message, so a signal lands mid-edition."""

    delay_s: float = 0.01

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        import asyncio

        await asyncio.sleep(self.delay_s)
        return await super().handle_DATA(server, session, envelope)


def test_sigterm_stops_claiming_and_exits_zero(services: Services, tmp_path: Path) -> None:
    count = 200
    now = datetime.now(UTC)
    add_papers(services.engine, now=now)
    add_subscribers(services.engine, count, hour=now.hour)
    with SmtpSink(SlowHandler()) as sink:
        env = worker_env(services.settings.database_url, sink)
        process = subprocess.Popen(
            [DIGEST_BIN, "worker", "--name", "term-1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert wait_until(lambda: len(sink.messages) >= 20, timeout=30)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
            process.stderr.close()
        sent_at_sink = len(sink.messages)
    assert sent_at_sink < count  # it really stopped mid-edition
    with Session(services.engine) as session:
        states = session.exec(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
    states = dict(states)
    assert states.get("claimed", 0) == 0  # unsent claims were handed back
    assert states.get("sent", 0) == sent_at_sink
