"""The ledger's per-batch queries cost O(batch), not O(edition): their plans (EXPLAIN on the
real statements, captured as they run) walk the (edition, state, id) and (subscriber, state)
indexes instead of every row of the edition or every sent row."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import event, insert, text, update
from sqlmodel import Session, col

from digest.db import make_engine, upgrade
from digest.models import Delivery, Subscriber
from digest.store import deliveries as ledger
from digest.store import editions as edition_store

NOW = datetime(2026, 6, 12, 8, tzinfo=UTC)
ROWS = 6000
EMPTY = {"seed_papers": [], "categories": [], "authors": [], "muted": []}


def _edition_mostly_sent(session: Session) -> int:
    session.execute(
        insert(Subscriber),
        [
            {"email": f"r{i}@example.com", "status": "active", "created_at": NOW, **EMPTY}
            for i in range(ROWS)
        ],
    )
    edition, _ = edition_store.get_or_create_edition(session, edition_date=date(2026, 6, 12))
    ids = [i for (i,) in session.execute(text("SELECT id FROM subscriber"))]
    ledger.plan_deliveries(session, edition_id=edition.id, subscriber_ids=ids)
    previous, _ = edition_store.get_or_create_edition(session, edition_date=date(2026, 6, 11))
    ledger.plan_deliveries(session, edition_id=previous.id, subscriber_ids=ids)
    cut = ids[ROWS * 9 // 10]
    session.execute(update(Delivery).where(col(Delivery.subscriber_id) < cut).values(state="sent"))
    session.execute(update(Delivery).where(Delivery.edition_id == previous.id).values(state="sent"))
    session.commit()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE delivery"))
    else:
        session.execute(text("ANALYZE"))
    session.commit()
    return edition.id


def _plans(session: Session, statements: list[tuple[str, object]]) -> list[str]:
    postgres = session.get_bind().dialect.name == "postgresql"
    prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
    connection = session.connection().connection.driver_connection
    plans = []
    if postgres:
        # A small table is cheaper to read whole; the question here is which index is used.
        connection.cursor().execute("SET LOCAL enable_seqscan = off")
    for sql, params in statements:
        cursor = connection.cursor()
        cursor.execute(prefix + sql, params)
        plans.append(" | ".join(str(row[-1]) for row in cursor.fetchall()))
    session.rollback()
    return plans


def test_claiming_and_the_profile_load_use_per_batch_indexes(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with Session(engine) as session:
        edition_id = _edition_mostly_sent(session)
        seen: list[tuple[str, object]] = []

        def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "delivery" in statement:
                seen.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", capture)
        batch = ledger.claim_batch(
            session, edition_id=edition_id, worker="w", limit=200, now=NOW, lease_s=600
        )
        ledger.delivered_keys(session, [d.subscriber_id for d in batch])
        event.remove(engine, "before_cursor_execute", capture)

        claims = _plans(session, [s for s in seen if "LIMIT" in s[0]])
        profile = _plans(session, [s for s in seen if "delivery.subscriber_id IN" in s[0]])

    engine.dispose()
    assert len(batch) == 200
    assert len(claims) >= 3, claims  # lapsed claims, due deferred rows, pending rows
    assert "ix_delivery_edition_state" in claims[-1], claims[-1]
    assert len(profile) == 1 and "ix_delivery_subscriber_state" in profile[0], profile
    for plan in claims + profile:
        # Neither the whole table, nor the whole edition, nor every sent row is walked.
        assert "Seq Scan on delivery" not in plan and "SCAN delivery" not in plan, plan
        assert "ix_delivery_edition_id " not in plan, plan
    assert not any("'sent'" in plan for plan in claims), claims
