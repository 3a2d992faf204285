"""Many workers on one PostgreSQL database (RELIABILITY A2, S2, and kill -9 with resumption).

Every count is taken at the SMTP sink by Message-ID, which is deterministic per (edition,
subscriber): two copies of one id are a duplicate send, a missing id is a missed subscriber.
Skipped without DIGEST_TEST_DATABASE_URL; with CI set, its absence fails (conftest).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select
from sqlmodel import Session

from digest import bootstrap, timetable
from digest.bootstrap import Services
from digest.db import make_engine, upgrade
from digest.models import Delivery, Edition
from digest.settings import DeliverySettings, SchedulerSettings, Settings, SmtpSettings
from digest.smtpd.sink import SmtpSink
from digest.usecases import leases
from digest.usecases.scheduler import Worker
from tests.test_scheduler import DIGEST_BIN, SlowHandler, wait_until, worker_env
from tests.worker_helpers import add_papers, add_subscribers, message_ids

pytestmark = pytest.mark.postgres


def pg_services(url: str, sink: SmtpSink, **scheduler: float) -> Services:
    settings = Settings(
        mode="dev",
        database_url=url,
        smtp=SmtpSettings(host=sink.host, port=sink.port, timeout_s=10, connections=2),
        delivery=DeliverySettings(backoff_base_s=1.0, batch_size=20),
        scheduler=SchedulerSettings(**scheduler),
    )
    return bootstrap.build(settings, engine=make_engine(url))


@pytest.fixture
def pg(pg_schema_url: str, smtp_sink: SmtpSink) -> Iterator[Services]:
    services = pg_services(pg_schema_url, smtp_sink)
    upgrade(services.engine)
    yield services
    services.close()


class SimClock:
    """Simulated time running `speed` times faster than the wall clock."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start, self.speed, self.real0 = start, speed, time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.real0) * self.speed)


def test_a2_workers_and_schedulers_compressed_days(
    pg_schema_url: str, pg: Services, smtp_sink: SmtpSink
) -> None:
    """Three workers (three would-be schedulers) over ~4 simulated days, 1 day = 2 s."""
    hour = pg.settings.scheduler.edition_hour
    first = datetime(2026, 5, 4, tzinfo=UTC).date()
    clock = SimClock(timetable.edition_start(first, hour), speed=43_200)
    add_papers(pg.engine, now=clock())
    # Delivery moments away from the 02:00 UTC window edge (a tick is 1.2 simulated hours).
    add_subscribers(pg.engine, 10, prefix="utc", timezone="UTC", hour=8)
    add_subscribers(pg.engine, 10, prefix="ber", timezone="Europe/Berlin", hour=7)
    add_subscribers(pg.engine, 10, prefix="nyc", timezone="America/New_York", hour=7)
    add_subscribers(pg.engine, 10, prefix="tyo", timezone="Asia/Tokyo", hour=18)
    triggers = {j: IntervalTrigger(seconds=0.3, timezone=UTC) for j in ("plan-edition",)}
    triggers |= {j: IntervalTrigger(hours=24, timezone=UTC) for j in ("fetch", "trending")}
    workers = []
    for i in range(3):
        services = pg_services(pg_schema_url, smtp_sink, lease_s=1.0)
        workers.append(
            Worker(
                services,
                name=f"a2-{i}",
                clock=clock,
                send_clock=lambda: datetime.now(UTC),  # claim leases in real seconds
                triggers=triggers,
                send_interval_s=0.1,
            )
        )
    for worker in workers:
        worker.start()
    try:
        time.sleep(4.0)
        leader = next(w for w in workers if w.is_leader)
        leader.stop()  # hand-over: another worker must take the scheduler role
        assert wait_until(lambda: any(w.is_leader for w in workers if w is not leader), 3)
        time.sleep(4.0)
        end = clock()
    finally:
        for worker in workers:
            worker.stop()
            worker.services.close()
    leaders = [w for w in workers if w.handovers]
    assert 2 <= len(leaders) <= 3 and all(w.handovers == 1 for w in leaders)
    with Session(pg.engine) as session:
        dates = sorted(session.scalars(select(Edition.edition_date)).all())
        sent = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.state == "sent")
        )
        # The papers arrive once, on the first day: later days hold nothing new, so those
        # rows are handled (skipped with that reason) and no empty mail goes out (issue 15).
        handled = session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where((Delivery.state == "sent") | (Delivery.reason == "nothing new"))
        )
    days = (timetable.edition_date_at(end, hour) - first).days + 1
    assert dates == [first + timedelta(days=i) for i in range(days)]  # exactly one per day
    counts = message_ids(m.data for m in smtp_sink.messages)
    assert max(counts.values()) == 1  # 0 duplicate sends
    assert len(counts) == sent
    assert sent == 40  # the first day's digest; nothing new after it
    assert handled >= 40 * (days - 1)  # every full simulated day reached every subscriber


def send_in_processes(url: str, sink: SmtpSink, processes: int, **env: str) -> Counter[str]:
    """`digest send --all-now` in that many processes at once; copies of each Message-ID."""
    senders = [
        subprocess.Popen(
            [DIGEST_BIN, "send", "--all-now"],
            env=worker_env(url, sink, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(processes)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in senders]
    assert [p.returncode for p in senders] == [0] * processes, outputs
    return message_ids(m.data for m in sink.messages)


@pytest.mark.parametrize("processes", [2, 4])
def test_s2_sender_processes_share_one_edition(
    pg: Services, pg_schema_url: str, smtp_sink: SmtpSink, processes: int
) -> None:
    count = 150
    add_papers(pg.engine)
    add_subscribers(pg.engine, count)
    counts = send_in_processes(pg_schema_url, smtp_sink, processes, DIGEST_DELIVERY_BATCH_SIZE="25")
    assert len(counts) == count  # 0 missed
    assert max(counts.values()) == 1  # 0 duplicates
    with Session(pg.engine) as session:
        shares = session.execute(
            select(Delivery.claimed_by, func.count()).group_by(Delivery.claimed_by)
        ).all()
    assert sum(n for _, n in shares) == count


def test_kill_9_worker_is_resumed_by_the_others(pg: Services, pg_schema_url: str) -> None:
    """kill -9 the lease holder mid-edition: the others take the scheduler role within the
    lease and resume its claimed rows once its heartbeat stops; nobody is missed.

    The delivery lease is long on purpose: what is tested is resumption through the heartbeat.
    A live worker renews its claims only as it records outcomes, and on a loaded machine a
    2 s lease ran out between two of its groups, which duplicated messages that have nothing
    to do with the kill."""
    count = 250
    now = datetime.now(UTC)
    add_papers(pg.engine, now=now)
    add_subscribers(pg.engine, count, hour=now.hour)
    connections = 2
    with SmtpSink(SlowHandler()) as sink:
        env = worker_env(
            pg_schema_url,
            sink,
            DIGEST_DELIVERY_LEASE_S="120",
            DIGEST_DELIVERY_BATCH_SIZE="20",
            DIGEST_SMTP_CONNECTIONS=str(connections),
        )
        names = [f"k9-{i}" for i in range(3)]
        procs = {
            name: subprocess.Popen(
                [DIGEST_BIN, "worker", "--name", name],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name in names
        }
        try:
            assert wait_until(lambda: len(sink.messages) >= 30, timeout=40)
            holder = leases.current(pg).holder
            assert holder in procs
            os.kill(procs[holder].pid, signal.SIGKILL)
            procs[holder].wait(timeout=10)
            killed_at = time.monotonic()
            assert wait_until(lambda: leases.current(pg).holder not in (holder,), timeout=10)
            takeover_s = time.monotonic() - killed_at

            def finished() -> bool:
                with Session(pg.engine) as session:
                    return (
                        session.scalar(
                            select(func.count())
                            .select_from(Delivery)
                            .where(Delivery.state == "sent")
                        )
                        == count
                    )

            assert wait_until(finished, timeout=60)
            for name, proc in procs.items():
                if name != holder:
                    proc.send_signal(signal.SIGTERM)
            for name, proc in procs.items():
                if name != holder:
                    assert proc.wait(timeout=20) == 0
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
        counts = message_ids(m.data for m in sink.messages)
    assert len(counts) == count  # 0 missed
    duplicates = sum(n - 1 for n in counts.values())
    # At-least-once for what was in flight at the kill: at most one per open connection.
    assert duplicates <= connections
    assert takeover_s < 5


def test_no_double_leader(pg: Services) -> None:
    """The lease goes to exactly one of several contenders, and to another once it expires."""
    start = datetime.now(UTC)
    won = [leases.acquire(pg, holder=f"w{i}", ttl_s=1.0, now=start) for i in range(4)]
    assert won == [True, False, False, False]
    later = start + timedelta(seconds=2)
    assert leases.acquire(pg, holder="w2", ttl_s=1.0, now=later)
    assert not leases.acquire(pg, holder="w0", ttl_s=1.0, now=later)


class VerySlowHandler(SlowHandler):
    delay_s = 0.15


def test_a_live_senders_batch_outliving_the_lease_is_not_sent_twice(
    pg: Services, pg_schema_url: str
) -> None:
    """A slow relay makes one batch take longer than the delivery lease (20 messages at
    0.15 s on one connection: 3 s against a 1 s lease). The sender is alive and making
    progress, so its claims are renewed as its outcomes are recorded; a second sender
    never claims them again, and nobody gets two digests."""
    count = 60
    add_papers(pg.engine)
    add_subscribers(pg.engine, count)
    with SmtpSink(VerySlowHandler()) as sink:
        counts = send_in_processes(
            pg_schema_url,
            sink,
            2,
            DIGEST_DELIVERY_LEASE_S="1",
            DIGEST_DELIVERY_BATCH_SIZE="20",
            DIGEST_SMTP_CONNECTIONS="1",
        )
    assert len(counts) == count  # 0 missed
    assert max(counts.values()) == 1, sum(n - 1 for n in counts.values())  # 0 duplicates
