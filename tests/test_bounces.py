"""Bounces and complaints (RELIABILITY.md S11, S12, C1) on the DSN and ARF corpus in fixtures/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from digest import bootstrap
from digest.bootstrap import Services
from digest.db import make_engine, upgrade
from digest.models import BounceEvent, Delivery, Edition, Subscriber, Suppression
from digest.settings import Settings
from digest.store import subscribers as subscriber_store
from digest.store import suppressions
from digest.usecases import bounces

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
REDACTED_OWNER = "first@example.org"  # subscriber 1, named only by our Message-ID in a fixture


def corpus() -> list[tuple[Path, list[list[str]]]]:
    cases = []
    for folder in ("dsn", "arf"):
        expected = json.loads((FIXTURES / folder / "expected.json").read_text())
        cases += [(FIXTURES / folder / name, want) for name, want in sorted(expected.items())]
    return cases


def test_an_rfc2231_encoded_report_type_reads_like_the_plain_one() -> None:
    """`report-type*=us-ascii''delivery-status` (RFC 2231) is the same report. Python's email
    package leaves that form undecoded for a hyphenated name, so the parts of the message,
    not the parameter, must decide that it is a delivery report."""
    raw = (FIXTURES / "dsn" / "exchange-ms-expired.eml").read_bytes()
    encoded = raw.replace(b"report-type=delivery-status", b"report-type*=us-ascii''delivery-status")
    assert encoded != raw
    plain = [(e.recipient, e.kind) for e in bounces.parse_report(raw)]
    assert plain and [(e.recipient, e.kind) for e in bounces.parse_report(encoded)] == plain


@pytest.fixture
def db_services(database_url: str, settings: Settings) -> Iterator[Services]:
    built = bootstrap.build(
        settings.model_copy(update={"database_url": database_url}),
        engine=make_engine(database_url),
    )
    upgrade(built.engine)
    yield built
    built.close()


def _subscribe_everyone(services: Services) -> None:
    """Subscriber 1 first (the redacted complaint names it by Message-ID), then every address."""
    addresses = [REDACTED_OWNER] + sorted(
        {r for _, want in corpus() for r, _ in want if r != "SUBSCRIBER-1"}
    )
    with Session(services.engine) as session:
        for address in addresses:
            subscriber_store.add_subscriber(session, email=address, confirmed=True, now=NOW)
        session.commit()


def _status(services: Services, email: str) -> str:
    with Session(services.engine) as session:
        subscriber = subscriber_store.get_by_email(session, email)
        assert subscriber is not None
        return subscriber.status


def _count(services: Services, model: type) -> int:
    with Session(services.engine) as session:
        return len(session.exec(select(model)).all())


def test_corpus_size_and_classification_is_exact() -> None:
    """S11: 100 % of the fixtures classified as expected (the confusion matrix is diagonal)."""
    cases = corpus()
    assert len([c for c in cases if c[0].parent.name == "dsn"]) >= 39
    assert len([c for c in cases if c[0].parent.name == "arf"]) == 10
    confusion: dict[tuple[str, str], int] = {}
    for path, want in cases:
        events = bounces.parse_report(path.read_bytes())
        got = [[e.recipient, e.kind] for e in events]
        expected = [[r.replace("SUBSCRIBER-1", "redacted@aol.example"), k] for r, k in want]
        for (_, w), (_, g) in zip(expected, got, strict=False):
            confusion[(w, g)] = confusion.get((w, g), 0) + 1
        assert got == expected, path.name
    assert all(w == g for w, g in confusion)
    keys = [e.key for path, _ in cases for e in bounces.parse_report(path.read_bytes())]
    assert len(keys) == len(set(keys))


def test_corpus_applied_twice_suppresses_hard_and_complaints_only(db_services) -> None:
    """S11 on SQLite and PostgreSQL: hard → 1 suppresses, complaint → suppresses, soft (one
    day) does not, delivered changes nothing; the second pass over the corpus changes nothing."""
    _subscribe_everyone(db_services)
    for path, _want in corpus():
        bounces.process_report(db_services, path.read_bytes(), now=NOW)
    first_pass = (_count(db_services, BounceEvent), _count(db_services, Suppression))
    for _replay in range(2):
        for path, _want in corpus():
            applied = bounces.process_report(db_services, path.read_bytes(), now=NOW)
            assert all(a.outcome == "replay" for a in applied), path.name
    assert (_count(db_services, BounceEvent), _count(db_services, Suppression)) == first_pass
    for _path, want in corpus():
        for recipient, kind in want:
            email = REDACTED_OWNER if recipient == "SUBSCRIBER-1" else recipient
            expected = "suppressed" if kind in ("hard", "complaint") else "active"
            assert _status(db_services, email) == expected, (recipient, kind)
    with Session(db_services.engine) as session:
        reasons = {s.reason for s in session.exec(select(Suppression))}
    assert reasons == {"hard_bounce", "complaint"}


def _soft_report(day: int, n: int) -> bytes:
    text = (FIXTURES / "dsn" / "postfix-pf-mailbox-full.eml").read_text()
    # A new report (its own Message-ID) for the same address, as an MTA sends each day.
    return text.replace("Message-Id: <20261124070005.", f"Message-Id: <d{day}n{n}.").encode()


def test_soft_bounces_suppress_only_after_three_distinct_days_within_seven(services) -> None:
    address = "pf-mailbox-full@example.org"
    with Session(services.engine) as session:
        subscriber_store.add_subscriber(session, email=address, confirmed=True, now=NOW)
        session.commit()
    # Three soft bounces on one day count as one day.
    for n in range(3):
        bounces.process_report(services, _soft_report(0, n), now=NOW + timedelta(hours=n))
    assert _status(services, address) == "active"
    # A second day, then a third day more than 7 days after the first: still two days in 7.
    bounces.process_report(services, _soft_report(1, 0), now=NOW + timedelta(days=1))
    bounces.process_report(services, _soft_report(8, 0), now=NOW + timedelta(days=8))
    assert _status(services, address) == "active"
    # Days 8, 9 and 1 are not within 7 of each other either; 8, 9, 10 are.
    bounces.process_report(services, _soft_report(9, 0), now=NOW + timedelta(days=9))
    assert _status(services, address) == "active"
    applied = bounces.process_report(services, _soft_report(10, 0), now=NOW + timedelta(days=10))
    assert [a.outcome for a in applied] == ["suppressed"]
    assert _status(services, address) == "suppressed"
    # Replaying the report that tipped it over changes nothing.
    again = bounces.process_report(services, _soft_report(10, 0), now=NOW + timedelta(days=11))
    assert [a.outcome for a in again] == ["replay"]


def test_same_event_three_times_is_one_row_and_state_is_monotonic(db_services) -> None:
    """S12: one row for a triple delivery; a 'delivered' report after a bounce changes nothing."""
    _subscribe_everyone(db_services)
    hard = (FIXTURES / "dsn" / "gmail-gm-no-account.eml").read_bytes()
    outcomes = [bounces.process_report(db_services, hard, now=NOW)[0].outcome for _ in range(3)]
    assert outcomes == ["suppressed", "replay", "replay"]
    assert _count(db_services, BounceEvent) == 1
    delivered = (
        (FIXTURES / "dsn" / "postfix-pf-success.eml")
        .read_text()
        .replace("pf-success@example.org", "gm-no-account@example.org")
        .encode()
    )
    later = bounces.process_report(db_services, delivered, now=NOW + timedelta(minutes=5))
    assert [a.event.kind for a in later] == ["delivered"]
    assert _status(db_services, "gm-no-account@example.org") == "suppressed"
    with Session(db_services.engine) as session:
        reasons = [s.reason for s in session.exec(select(Suppression))]
    assert reasons == ["hard_bounce"]


def test_a_complaint_upgrades_an_unsubscribe_so_resubscribing_cannot_lift_it(services) -> None:
    from digest.usecases.leaving import unsubscribe

    _subscribe_everyone(services)
    with Session(services.engine) as session:
        sid = subscriber_store.get_by_email(session, "arf-yahoo@example.org").id
    unsubscribe(services, sid, now=NOW)
    bounces.process_report(services, (FIXTURES / "arf" / "yahoo-cfl.eml").read_bytes(), now=NOW)
    with Session(services.engine) as session:
        assert suppressions.reason(session, "arf-yahoo@example.org") == "complaint"


def _sent_deliveries(services: Services, count: int, when: datetime) -> list[int]:
    """`count` subscribers who each got today's edition; returns their ids (bulk inserts)."""
    from sqlalchemy import insert

    with Session(services.engine) as session:
        edition = Edition(edition_date=when.date(), status="sent")
        session.add(edition)
        session.flush()
        # Plain dicts: constructing 4000 table models costs seconds, an executemany does not.
        profile = {"interests": "", "seed_papers": [], "categories": [], "authors": []}
        profile |= {"muted": [], "timezone": "UTC", "delivery_hour": 7, "frequency": "daily"}
        profile |= {"weekly_day": 0, "status": "active", "created_at": when}
        rows = [{"email": f"reader{i}@example.org", **profile} for i in range(count)]
        session.execute(insert(Subscriber), rows)
        ids = list(session.exec(select(Subscriber.id).order_by(Subscriber.id)))
        ledger = {"edition_id": edition.id, "state": "sent", "sent_at": when}
        ledger |= {"attempts": 0, "paper_keys": []}
        session.execute(insert(Delivery), [{"subscriber_id": i, **ledger} for i in ids])
        session.commit()
        return ids


def _complaint_for(services: Services, subscriber_id: int, edition_id: int = 1) -> bytes:
    from digest.render import message_id

    mid = message_id(
        edition_id=edition_id,
        subscriber_id=subscriber_id,
        domain="digest.example.com",
        secret=services.settings.secret(),
    )
    text = (FIXTURES / "arf" / "aol-redacted.eml").read_text()
    text = text.replace("<edition-1.sub-1.99431b5a@digest.example.com>", mid)
    return text.replace("<arf-aol-redacted@", f"<arf-{subscriber_id}@").encode()


@pytest.mark.parametrize(
    ("complaints", "level", "paused"),
    [(1, "ok", False), (3, "warn", False), (7, "pause", True)],
    ids=["0.05%", "0.15%", "0.35%"],
)
def test_complaint_rate_warns_then_pauses(services, caplog, complaints, level, paused) -> None:
    """C1: complaints at 0.05 %, 0.15 %, 0.35 % of 2000 deliveries → nothing, warn, pause."""
    ids = _sent_deliveries(services, 2000, NOW - timedelta(hours=2))
    for sid in ids[:complaints]:
        applied = bounces.process_report(services, _complaint_for(services, sid), now=NOW)
        assert [a.outcome for a in applied] == ["suppressed"]
    with Session(services.engine) as session:
        check = bounces.complaint_rate(session, now=NOW)
        assert bounces.sending_paused(session) is paused
    assert (check.complaints, check.sent, check.level) == (complaints, 2000, level)
    alerts = [r for r in caplog.records if "ALERT complaint_rate" in r.getMessage()]
    assert bool(alerts) is (level != "ok")
    if paused:
        with Session(services.engine) as session:
            assert bounces.resume_sending(session, now=NOW) == 1
            session.commit()
            assert not bounces.sending_paused(session)
            # The complaints that caused the pause do not pause again after the resume.
            assert bounces.complaint_rate(session, now=NOW + timedelta(minutes=1)).level == "ok"


@pytest.mark.parametrize(("complaints", "paused"), [(2, False), (3, True)])
def test_a_small_list_pauses_only_after_a_few_complaints(services, complaints, paused) -> None:
    """On 100 deliveries one complaint is 1 %: it warns, but a pause needs three."""
    ids = _sent_deliveries(services, 100, NOW - timedelta(hours=2))
    for sid in ids[:complaints]:
        bounces.process_report(services, _complaint_for(services, sid), now=NOW)
    with Session(services.engine) as session:
        check = bounces.complaint_rate(session, now=NOW)
        assert bounces.sending_paused(session) is paused
    assert check.level == ("pause" if paused else "warn")


def test_forged_message_id_is_not_trusted(services) -> None:
    _subscribe_everyone(services)
    text = (FIXTURES / "arf" / "aol-redacted.eml").read_text()
    forged = text.replace("99431b5a", "00000000").encode()
    applied = bounces.process_report(services, forged, now=NOW)
    # The tag does not verify, so only the (redacted) address is left, and it is nobody's.
    assert _status(services, REDACTED_OWNER) == "active"
    assert [a.subscriber_id for a in applied] == [None]
