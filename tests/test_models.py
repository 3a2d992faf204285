"""Tables and migrations on SQLite and (where configured) PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from digest.db import current_revision, make_engine, upgrade
from digest.models import Delivery, Edition, Paper, Subscriber
from digest.sources.base import PaperRecord
from digest.usecases.paper_merge import upsert_papers

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str):
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_migrations_create_every_table_and_are_idempotent(engine) -> None:
    first = current_revision(engine)

    again = upgrade(engine)

    assert first == again and first


def test_a_paper_upserted_twice_is_one_row(engine) -> None:
    record = PaperRecord(
        key="2504.17830",
        arxiv_id="2504.17830",
        version=1,
        title="A paper",
        abstract="About things.",
        source="arxiv-rss",
    )

    with Session(engine) as session:
        upsert_papers(session, [record], now=NOW)
        session.commit()
        upsert_papers(session, [record], now=NOW)
        session.commit()
        rows = session.exec(select(Paper)).all()

    assert len(rows) == 1
    assert rows[0].published is None or rows[0].published.tzinfo is not None


def test_a_delivery_for_the_same_subscriber_and_edition_cannot_be_inserted_twice(engine) -> None:
    with Session(engine) as session:
        subscriber = Subscriber(email="ada@example.com", status="active")
        edition = Edition(edition_date=date(2026, 11, 24))
        session.add_all([subscriber, edition])
        session.commit()
        session.add(Delivery(edition_id=edition.id, subscriber_id=subscriber.id))
        session.commit()
        session.add(Delivery(edition_id=edition.id, subscriber_id=subscriber.id))

        with pytest.raises(IntegrityError):
            session.commit()


def test_timestamps_come_back_as_aware_utc(engine) -> None:
    with Session(engine) as session:
        session.add(Subscriber(email="tz@example.com", created_at=NOW))
        session.commit()
        stored = session.exec(select(Subscriber)).one()

    assert stored.created_at == NOW
    assert stored.created_at.tzinfo is not None
