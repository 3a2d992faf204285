"""Claims belong to a live sender: a rerun right after `kill -9` finishes the edition at once,
and rows a live sender holds are reported (how many, until when) with a non-zero exit.

Real processes, the real `digest send`, the claim lease left at its default (600 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from digest.bootstrap import Services
from digest.db import make_engine
from digest.models import Delivery, SendingProcess, utcnow
from digest.store import deliveries as ledger
from digest.store import senders
from digest.usecases.editions import plan_edition
from tests.smtp_faults import FaultyHandler, FaultySink
from tests.test_delivery import _build

DIGEST = str(Path(sys.executable).parent / "digest")
# `digest send` runs on the real clock: every subscriber now, whatever their local hour, with
# papers first seen now (a first digest covers the days before its edition, windows.py).
SEND = [DIGEST, "send", "--all-now"]


@pytest.fixture
def sink() -> Iterator[FaultySink]:
    with FaultySink(FaultyHandler()) as running:
        yield running


def _env(database_url: str, sink: FaultySink, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DIGEST_MODE": "dev",
        "DIGEST_DATABASE_URL": database_url,
        "DIGEST_SMTP_HOST": "127.0.0.1",
        "DIGEST_SMTP_PORT": str(sink.port),
        "DIGEST_SMTP_CONNECTIONS": "4",
        "DIGEST_DELIVERY_BATCH_SIZE": "50",
        **extra,
    }


def _states(database_url: str) -> dict[str, int]:
    engine = make_engine(database_url)
    with Session(engine) as session:
        rows = session.exec(select(Delivery.state)).all()
    engine.dispose()
    return {state: rows.count(state) for state in set(rows)}


def test_a_rerun_right_after_kill_9_finishes_the_edition(
    database_url: str, sink: FaultySink
) -> None:
    count, connections = 500, 4
    _build(database_url, sink, count, now=utcnow(), connections=connections).close()
    env = _env(database_url, sink, DIGEST_SMTP_MAX_RATE_PER_S="250")
    assert "DIGEST_DELIVERY_LEASE_S" not in env  # the default lease: 600 s

    sender = subprocess.Popen(SEND, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while len(sink.handler.accepted) < 120 and sender.poll() is None:
        assert time.monotonic() < deadline, "the sender made no progress"
        time.sleep(0.005)
    assert sender.poll() is None, "the sender finished before it could be killed"
    sender.send_signal(signal.SIGKILL)
    sender.wait()
    killed_at = time.monotonic()
    claimed = _states(database_url).get("claimed", 0)

    rerun = subprocess.run(SEND, env=env, capture_output=True, timeout=240)

    received = sink.handler.recipients()
    duplicates = sum(n - 1 for n in received.values())
    assert claimed > 0, "the kill left no claim behind: the test proves nothing"
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert len(received) == count, "someone was left to the lease"
    assert duplicates <= connections
    assert _states(database_url) == {"sent": count}
    assert time.monotonic() - killed_at < 60


def _hold(services: Services, *, rows: int, heartbeat_age_s: float) -> str:
    """Another sender (on another host) claims `rows` rows of today's edition and has beaten
    `heartbeat_age_s` ago."""
    now = utcnow()
    edition, _ = plan_edition(services, edition_date=now.date(), now=now)
    holder = "elsewhere:4242:abcdef"
    with Session(services.engine) as session:
        session.add(
            SendingProcess(
                name=holder,
                host="elsewhere",
                pid=4242,
                started_at=now - timedelta(minutes=5),
                heartbeat_at=now - timedelta(seconds=heartbeat_age_s),
            )
        )
        session.commit()
        ledger.claim_batch(
            session, edition_id=edition.id, worker=holder, limit=rows, now=now, lease_s=600
        )
    return holder


def test_rows_a_live_sender_holds_are_reported_with_a_non_zero_exit(
    sqlite_url: str, sink: FaultySink
) -> None:
    services = _build(sqlite_url, sink, 80, now=utcnow())
    holder = _hold(services, rows=30, heartbeat_age_s=0)
    services.close()

    rerun = subprocess.run(
        SEND,
        env=_env(sqlite_url, sink, DIGEST_DELIVERY_CLAIM_WAIT_S="1"),
        capture_output=True,
        timeout=120,
        text=True,
    )

    error = " ".join(rerun.stderr.split())
    assert rerun.returncode != 0
    assert "30 subscribers not sent yet: claimed by a live sender" in error, error
    assert holder in error and "UTC" in error
    assert len(sink.handler.recipients()) == 50
    assert _states(sqlite_url) == {"sent": 50, "claimed": 30}


def test_a_sender_that_stops_beating_is_taken_over_within_seconds(
    database_url: str, sink: FaultySink
) -> None:
    services = _build(database_url, sink, 80, now=utcnow())
    ttl = services.settings.delivery.heartbeat_ttl_s
    _hold(services, rows=30, heartbeat_age_s=ttl - 3)
    services.close()
    started = time.monotonic()

    rerun = subprocess.run(SEND, env=_env(database_url, sink), capture_output=True, timeout=120)

    assert rerun.returncode == 0, rerun.stderr.decode()
    assert len(sink.handler.recipients()) == 80
    assert _states(database_url) == {"sent": 80}
    assert time.monotonic() - started < ttl + 10


def test_claims_of_a_live_local_sender_stay_its_own(sqlite_url: str, sink: FaultySink) -> None:
    """This process is alive and beats: a second sender sends the rest and leaves its rows."""
    services = _build(sqlite_url, sink, 40, now=utcnow())
    now = utcnow()
    edition, _ = plan_edition(services, edition_date=now.date(), now=now)
    me = f"{os.uname().nodename}:{os.getpid()}:000000"
    with Session(services.engine) as session:
        session.add(SendingProcess(name=me, host=senders.this_host(), pid=os.getpid()))
        session.commit()
        ledger.claim_batch(
            session, edition_id=edition.id, worker=me, limit=10, now=now, lease_s=600
        )
    services.close()

    rerun = subprocess.run(
        SEND,
        env=_env(sqlite_url, sink, DIGEST_DELIVERY_CLAIM_WAIT_S="0"),
        capture_output=True,
        timeout=120,
    )

    assert rerun.returncode != 0
    assert _states(sqlite_url) == {"sent": 30, "claimed": 10}
