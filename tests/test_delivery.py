"""Sending an edition against a real SMTP server with injected faults (RELIABILITY.md S1-S10).

Clocks are compressed through settings (backoff bases of milliseconds), never by mocking.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from digest import bootstrap
from digest.bootstrap import Services
from digest.db import make_engine, session_scope, upgrade
from digest.models import Delivery, Subscriber, Suppression
from digest.settings import DeliverySettings, Settings, SmtpSettings
from digest.store import subscribers as subscriber_store
from digest.usecases.editions import plan_edition, send_edition
from digest.usecases.ingest import ingest_file
from tests.smtp_faults import FaultPlan, FaultyHandler, FaultySink

FIXTURES = Path(__file__).parent / "fixtures"
HF_DAILY = FIXTURES / "hf_daily_papers_api_limit30_2026-06-12.json"
NOW = datetime(2026, 6, 12, 8, 0, tzinfo=UTC)
INTERESTS = ("video generation", "language model agents", "reinforcement learning", "robotics")


def _settings(database_url: str, port: int, **smtp: object) -> Settings:
    smtp_settings = {
        "host": "127.0.0.1",
        "port": port,
        "timeout_s": 5,
        "connections": 4,
        "relay_backoff_base_s": 0.05,
        "relay_backoff_max_s": 0.2,
        **smtp,
    }
    return Settings(
        mode="dev",
        database_url=database_url,
        smtp=SmtpSettings(**smtp_settings),
        delivery=DeliverySettings(backoff_base_s=0.01, batch_size=50, lease_s=600),
    )


def _populate(services: Services, count: int, *, now: datetime = NOW) -> None:
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=now)
    with session_scope(services.engine) as session:
        for i in range(count):
            subscriber_store.add_subscriber(
                session,
                email=f"reader{i:04d}@example.com",
                interests=INTERESTS[i % len(INTERESTS)],
                confirmed=True,
                now=now,
            )


@pytest.fixture(params=[False, True], ids=["lockstep", "pipelining"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    """Whether the relay offers PIPELINING: the transport then reads replies grouped."""
    return request.param


@pytest.fixture
def sink() -> Iterator[FaultySink]:
    with FaultySink(FaultyHandler()) as running:
        yield running


def _build(
    database_url: str, sink: FaultySink, count: int, *, now: datetime = NOW, **smtp: object
) -> Services:
    """`now`: when the papers are first seen and the subscribers join (a first digest covers
    the papers of the days before its edition, see windows.py)."""
    services = bootstrap.build(_settings(database_url, sink.port, **smtp))
    upgrade(services.engine)
    _populate(services, count, now=now)
    return services


def _states(services: Services) -> dict[str, int]:
    with Session(services.engine) as session:
        rows = session.exec(select(Delivery.state)).all()
    return {state: rows.count(state) for state in set(rows)}


def _send(services: Services, **kwargs: object):
    edition, _ = plan_edition(services, edition_date=NOW.date(), now=NOW)
    return asyncio.run(send_edition(services, edition, now=NOW, **kwargs))


def test_every_subscriber_gets_exactly_one_message(database_url: str, sink: FaultySink) -> None:
    services = _build(database_url, sink, 60)

    report = _send(services)
    again = _send(services)

    assert report.sent == 60 and again.sent == 0
    assert set(sink.handler.recipients().values()) == {1}
    assert set(sink.handler.ids().values()) == {1}
    assert _states(services) == {"sent": 60}


def test_transient_4xx_and_dropped_sessions_are_retried_without_a_storm(
    database_url: str, sink: FaultySink, pipelining: bool
) -> None:
    """S3: 20 % of RCPTs get 451 and 5 % of sessions get 421: all delivered, amplification low."""
    sink.handler.plan = FaultPlan(
        random_rcpt=[(0.20, "451 4.3.0 Try again later")],
        drop_session_rate=0.05,
        seed=3,
        pipelining=pipelining,
    )
    services = _build(database_url, sink, 120)

    report = _send(services, wait_for_retries=True)

    handler = sink.handler
    amplification = handler.rcpt_attempts / 120
    assert report.sent == 120 and report.failed == 0
    assert set(handler.recipients().values()) == {1}
    assert amplification <= 1.35, amplification
    assert max(handler.rcpt_by_recipient.values()) <= services.settings.delivery.max_attempts


def test_a_permanent_550_fails_once_and_suppresses_while_552_is_retried(
    database_url: str, sink: FaultySink, pipelining: bool
) -> None:
    """S4: 550 5.1.1 -> exactly one attempt, failed, suppressed; 552 -> deferred and retried."""
    bad, full = "reader0003@example.com", "reader0004@example.com"
    sink.handler.plan = FaultPlan(
        by_recipient={bad: "550 5.1.1 No such user", full: "552 5.2.2 Mailbox full"},
        pipelining=pipelining,
    )
    services = _build(database_url, sink, 10)

    report = _send(services, wait_for_retries=True)

    handler = sink.handler
    assert handler.rcpt_by_recipient[bad] == 1
    assert handler.rcpt_by_recipient[full] == services.settings.delivery.max_attempts
    assert report.sent == 8 and report.failed == 2 and report.suppressed == 1
    with Session(services.engine) as session:
        assert session.exec(select(Subscriber.status).where(Subscriber.email == bad)).one() == (
            "suppressed"
        )
        assert len(session.exec(select(Suppression)).all()) == 1


def test_a_relay_outage_fails_no_message_and_causes_no_connection_storm(
    sqlite_url: str, sink: FaultySink
) -> None:
    """S5: the relay refuses connections for a while mid-batch; nothing fails, sending resumes."""
    services = _build(
        sqlite_url, sink, 40, max_rate_per_s=40.0, relay_backoff_base_s=0.1, relay_backoff_max_s=0.4
    )
    outage_s = 2.0

    async def outage() -> None:
        while len(sink.handler.accepted) < 10:
            await asyncio.sleep(0.01)
        sink.stop()
        await asyncio.sleep(outage_s)
        before = sink.handler.connections
        sink.start()
        outage_stats["recovered_at"] = time.monotonic()
        outage_stats["connections_before"] = before

    outage_stats: dict[str, float] = {}

    async def scenario():
        edition, _ = plan_edition(services, edition_date=NOW.date(), now=NOW)
        result, _ = await asyncio.gather(send_edition(services, edition, now=NOW), outage())
        return result

    started = time.monotonic()
    report = asyncio.run(scenario())

    assert report.sent == 40 and report.failed == 0 and not report.relay_down
    assert set(sink.handler.recipients().values()) == {1}
    # One probe at a time, backing off to 0.4 s: a handful of attempts, not a storm.
    assert 1 <= report.relay_trips <= 10
    resumed = min(t for _, _, t in sink.handler.accepted if t >= outage_stats["recovered_at"])
    assert resumed - outage_stats["recovered_at"] <= 0.5
    assert time.monotonic() - started < outage_s + 5


def test_a_lost_acknowledgement_costs_at_most_one_duplicate_with_the_same_message_id(
    database_url: str, sink: FaultySink, pipelining: bool
) -> None:
    """S6: the relay keeps 2 % of messages but answers after the client gave up on them.

    At-least-once by policy: such a message is sent again, under the same Message-ID so the
    recipient's mail system can fold the copies; nobody else gets a second copy.
    """
    sink.handler.plan = FaultPlan(
        lost_ack_rate=0.02, lost_ack_delay_s=3.0, seed=11, pipelining=pipelining
    )
    services = _build(database_url, sink, 200, timeout_s=1.0)

    report = _send(services, wait_for_retries=True)

    handler = sink.handler
    received = handler.recipients()
    duplicated = {rcpt: n for rcpt, n in received.items() if n > 1}
    assert handler.lost_acks, "the fault plan injected nothing"
    assert report.sent == 200 and report.failed == 0
    assert len(received) == 200
    assert sum(n - 1 for n in duplicated.values()) <= len(handler.lost_acks)
    assert set(duplicated) <= set(handler.lost_acks)
    ids_by_recipient: dict[str, set[str]] = {}
    for rcpt, message_id, _ in handler.accepted:
        ids_by_recipient.setdefault(rcpt, set()).add(message_id)
    assert {len(ids) for ids in ids_by_recipient.values()} == {1}
    with Session(services.engine) as session:
        rows = session.exec(
            select(Subscriber.email, Delivery.message_id, Delivery.state).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        ).all()
    assert {state for _, _, state in rows} == {"sent"}
    assert all(ids_by_recipient[email] == {message_id} for email, message_id, _ in rows)


def test_the_configured_rate_and_concurrency_are_honoured(
    sqlite_url: str, sink: FaultySink
) -> None:
    """S7: 50 msg/s over 2 connections: no 1-s window above the rate, at most 2 sessions."""
    services = _build(sqlite_url, sink, 150, max_rate_per_s=50.0, connections=2)

    report = _send(services)

    times = sorted(t for _, _, t in sink.handler.accepted)
    worst = max(sum(1 for u in times[i:] if u - t < 1.0) for i, t in enumerate(times))
    assert report.sent == 150
    assert worst <= 51, worst
    assert sink.handler.max_active <= 2


def test_an_unsubscribe_mid_edition_stops_that_message(sqlite_url: str, sink: FaultySink) -> None:
    """S10: subscribers who leave while the edition is going out get nothing more."""
    services = _build(sqlite_url, sink, 200, max_rate_per_s=200.0)
    leavers = [f"reader{i:04d}@example.com" for i in range(150, 200)]

    async def unsubscribe_after_some() -> None:
        while len(sink.handler.accepted) < 50:
            await asyncio.sleep(0.005)
        with session_scope(services.engine) as session:
            for email in leavers:
                subscriber = subscriber_store.get_by_email(session, email)
                subscriber.status = "unsubscribed"
                session.add(subscriber)

    async def scenario():
        edition, _ = plan_edition(services, edition_date=NOW.date(), now=NOW)
        result, _ = await asyncio.gather(
            send_edition(services, edition, now=NOW), unsubscribe_after_some()
        )
        return result

    report = asyncio.run(scenario())

    delivered = sink.handler.recipients()
    assert not any(delivered[email] for email in leavers)
    assert report.sent == 150 and report.skipped == 50


def test_a_past_edition_expires_instead_of_sending_stale_mail(
    sqlite_url: str, sink: FaultySink
) -> None:
    services = _build(sqlite_url, sink, 5)
    edition, _ = plan_edition(
        services, edition_date=date(2026, 6, 11), now=datetime(2026, 6, 11, 6, tzinfo=UTC)
    )

    report = asyncio.run(send_edition(services, edition, now=NOW))

    assert report.sent == 0 and report.expired == 5
    assert sink.handler.accepted == []


SENDER_SCRIPT = """
import asyncio, sys
from datetime import UTC, datetime
from digest import bootstrap
from digest.usecases.editions import plan_edition, send_edition
from digest.settings import load_from_environment
services = bootstrap.build(load_from_environment())
now = datetime(2026, 6, 12, 8, 0, tzinfo=UTC)
edition, _ = plan_edition(services, edition_date=now.date(), now=now)
report = asyncio.run(send_edition(services, edition, now=now))
print("sent", report.sent)
"""


def test_a_killed_sender_resumes_without_missing_anyone(tmp_path: Path, sink: FaultySink) -> None:
    """S1: kill -9 the sender mid-edition three times; restarts miss no one, duplicates bounded."""
    database_url = f"sqlite:///{tmp_path / 'crash.db'}"
    count, connections = 300, 4
    services = _build(database_url, sink, count, connections=connections)
    services.close()
    env = {
        **os.environ,
        "DIGEST_MODE": "dev",
        "DIGEST_DATABASE_URL": database_url,
        "DIGEST_SMTP_HOST": "127.0.0.1",
        "DIGEST_SMTP_PORT": str(sink.port),
        "DIGEST_SMTP_CONNECTIONS": str(connections),
        "DIGEST_DELIVERY_LEASE_S": "1",
        "DIGEST_DELIVERY_BATCH_SIZE": "50",
        "DIGEST_SMTP_MAX_RATE_PER_S": "300",
    }
    kills = 0
    for kill_after in (40, 120, 200):
        process = subprocess.Popen(
            [sys.executable, "-c", SENDER_SCRIPT],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while len(sink.handler.accepted) < kill_after and process.poll() is None:
            assert time.monotonic() < deadline, "sender made no progress"
            time.sleep(0.005)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        time.sleep(1.1)  # let the claim lease run out
    final = subprocess.run(
        [sys.executable, "-c", SENDER_SCRIPT], env=env, capture_output=True, timeout=120, check=True
    )

    received = sink.handler.recipients()
    duplicates = sum(n - 1 for n in received.values())
    engine = make_engine(database_url)
    with Session(engine) as session:
        states = session.exec(select(Delivery.state)).all()
    assert b"sent" in final.stdout
    assert kills >= 2
    assert len(received) == count, "someone was missed"
    assert duplicates <= connections * kills
    assert set(states) == {"sent"}
    assert all(n == 1 for n in sink.handler.ids().values()) or duplicates > 0


def test_a_complaint_rate_pause_stops_the_edition(sqlite_url: str, sink: FaultySink) -> None:
    from digest.models import SendingPause
    from digest.usecases.bounces import resume_sending

    services = _build(sqlite_url, sink, 5)
    with session_scope(services.engine) as session:
        session.add(SendingPause(reason="complaint rate 0.4 %", paused_at=NOW))

    paused = _send(services)
    with session_scope(services.engine) as session:
        resume_sending(session, now=NOW)
    resumed = _send(services)

    assert paused.paused and paused.sent == 0
    assert resumed.sent == 5


def test_view_in_browser_replays_exactly_what_was_sent(sqlite_url: str, sink: FaultySink) -> None:
    from fastapi.testclient import TestClient

    from digest.store import deliveries as ledger
    from digest.web import create_app

    services = _build(sqlite_url, sink, 1)
    _send(services)
    with Session(services.engine) as session:
        delivery = session.exec(select(Delivery)).one()
        shown = ledger.sent_picks(
            session, edition_id=delivery.edition_id, subscriber_id=delivery.subscriber_id
        )
    titles_before = _titles(services, delivery, shown)
    # Later clicks change tomorrow's ranking, never how a sent edition looks in the browser.
    with session_scope(services.engine) as session:
        for pick in shown[:3]:
            subscriber_store.record_feedback(
                session, subscriber_id=delivery.subscriber_id, paper_key=pick["id"], value=-1
            )
    token = services.tokens.dumps("view", [delivery.subscriber_id, delivery.edition_id])

    with TestClient(create_app(services)) as client:
        page = client.get(f"/view/{token}")

    assert [p["id"] for p in shown] == delivery.paper_keys and len(shown) == 10
    assert page.status_code == 200
    positions = [page.text.find(title) for title in titles_before]
    assert all(pos > 0 for pos in positions) and positions == sorted(positions)


def _titles(services: Services, delivery: Delivery, shown: list[dict[str, str]]) -> list[str]:
    from markupsafe import escape

    from digest.store import papers as paper_store

    with Session(services.engine) as session:
        papers = paper_store.papers_by_keys(session, [p["id"] for p in shown])
    return [str(escape(papers[p["id"]].title)) for p in shown]
