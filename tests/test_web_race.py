"""The atomic limits under a 20-way race, on SQLite and (where configured) PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from digest.models import Consent, Subscriber, utcnow
from digest.settings import Settings, SmtpSettings
from digest.usecases.limits import count, hit, purge_expired
from digest.usecases.preferences import Preferences
from digest.usecases.subscriptions import (
    RequestMeta,
    SubscribeRequest,
    request_subscription,
)
from tests.web_support import build_services

RACERS = 20


@pytest.fixture
def race_services(database_url, smtp_sink):
    services = build_services(
        Settings(
            mode="dev",
            database_url=database_url,
            smtp=SmtpSettings(host=smtp_sink.host, port=smtp_sink.port),
        )
    )
    yield services
    services.close()


def race(fn: Callable[[int], object]) -> list[object]:
    """Run fn(i) in RACERS threads released at the same instant; their results in order."""
    barrier = threading.Barrier(RACERS)
    results: list[object] = [None] * RACERS
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:  # surfaced below, with the thread's own traceback
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def test_sliding_limit_grants_one_slot_to_20_concurrent_requests(race_services) -> None:
    now = utcnow()
    limits = [(1, 900.0), (3, 86_400.0)]
    verdicts = race(lambda i: hit(race_services, "addr:x", limits, now=now))

    assert sum(v.allowed for v in verdicts) == 1
    assert all(v.retry_after_s > 0 for v in verdicts if not v.allowed)
    later = now + timedelta(minutes=16)
    verdicts = race(lambda i: hit(race_services, "addr:x", limits, now=later))
    assert sum(v.allowed for v in verdicts) == 1


def test_counter_grants_exactly_the_budget_under_a_race(race_services) -> None:
    expires = utcnow() + timedelta(hours=2)
    granted = race(lambda i: count(race_services, "global:h", 5, expires_at=expires))

    assert sum(granted) == 5
    assert purge_expired(race_services, now=utcnow() + timedelta(hours=3)) == 1


def test_counter_first_insert_race_refuses_nobody_under_budget(race_services) -> None:
    # The racers that lose the INSERT must retry, not mistake the new row for a full budget.
    expires = utcnow() + timedelta(hours=2)
    granted = race(lambda i: count(race_services, "global:h", 500, expires_at=expires))

    assert sum(granted) == RACERS


def test_20_concurrent_subscribes_for_one_address_yield_one_mail_and_one_row(
    race_services,
) -> None:
    request = SubscribeRequest("victim@example.com", Preferences(interests="x"))
    meta = RequestMeta("ip", "ua")
    mails = race(lambda i: request_subscription(race_services, request, meta))

    assert sum(1 for m in mails if m is not None) == 1
    with Session(race_services.engine) as session:
        assert len(session.exec(select(Subscriber)).all()) == 1
        assert len(session.exec(select(Consent)).all()) == 1


def test_20_concurrent_subscribes_for_distinct_addresses_all_get_mail(race_services) -> None:
    meta = RequestMeta("ip", "ua")
    mails = race(
        lambda i: request_subscription(
            race_services, SubscribeRequest(f"user{i}@example.com", Preferences()), meta
        )
    )
    assert sum(1 for m in mails if m is not None) == RACERS
