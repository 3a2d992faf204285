"""Helpers shared by the worker tests: bulk subscribers and papers, counting at the sink."""

from __future__ import annotations

import email
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from digest.models import Paper, Subscriber, utcnow


def add_subscribers(
    engine: Engine,
    count: int,
    *,
    prefix: str = "reader",
    timezone: str = "UTC",
    hour: int = 0,
    frequency: str = "daily",
    weekly_day: int = 0,
) -> list[int]:
    """Insert `count` active subscribers at once; returns their ids."""
    rows = [
        Subscriber(
            email=f"{prefix}{i}@example.org",
            status="active",
            interests="graph neural networks",
            timezone=timezone,
            delivery_hour=hour,
            frequency=frequency,
            weekly_day=weekly_day,
        )
        for i in range(count)
    ]
    with Session(engine, expire_on_commit=False) as session:
        session.add_all(rows)
        session.commit()
        return [r.id for r in rows]


def add_papers(
    engine: Engine, count: int = 5, *, now: datetime | None = None, first: int = 0
) -> None:
    """A few recent papers so every digest has content; `first` numbers a later day's batch."""
    now = now or utcnow()
    with Session(engine) as session:
        for i in range(first, first + count):
            session.add(
                Paper(
                    key=f"2611.{i:05d}",
                    arxiv_id=f"2611.{i:05d}",
                    title=f"Graph networks part {i}",
                    abstract="We study graph neural networks and message passing at scale.",
                    authors=["A. Author"],
                    categories=["cs.LG"],
                    upvotes=i,
                    first_seen=now - timedelta(hours=1),
                    last_seen=now,
                )
            )
        session.commit()


def message_ids(raw_messages: Iterable[bytes]) -> Counter[str]:
    """How many copies of each Message-ID the sink stored."""
    counts: Counter[str] = Counter()
    for raw in raw_messages:
        counts[email.message_from_bytes(raw)["Message-ID"]] += 1
    return counts
