"""Queries on subscribers, feedback and suppressions. Functions take a Session; callers commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from digest.models import Feedback, Subscriber, utcnow
from digest.store import suppressions


class SubscriberError(Exception):
    """A subscriber operation was refused (unknown address, already present, suppressed)."""


def get_by_email(session: Session, email: str) -> Subscriber | None:
    return session.exec(select(Subscriber).where(Subscriber.email == email.lower())).first()


def get(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.get(Subscriber, subscriber_id)


def add_subscriber(
    session: Session,
    *,
    email: str,
    interests: str = "",
    categories: Sequence[str] = (),
    seed_papers: Sequence[str] = (),
    authors: Sequence[str] = (),
    timezone: str = "UTC",
    delivery_hour: int = 7,
    confirmed: bool = False,
    now: datetime | None = None,
) -> Subscriber:
    """Insert a subscriber (pending unless `confirmed`); refuses duplicates and suppressed ones."""
    email = email.strip().lower()
    if get_by_email(session, email) is not None:
        raise SubscriberError(f"{email}: already subscribed")
    if suppressions.is_suppressed(session, email):
        raise SubscriberError(f"{email}: address is suppressed")
    now = now or utcnow()
    subscriber = Subscriber(
        email=email,
        interests=interests,
        categories=list(categories),
        seed_papers=list(seed_papers),
        authors=list(dict.fromkeys(authors)),
        timezone=timezone,
        delivery_hour=delivery_hour,
        status="active" if confirmed else "pending",
        created_at=now,
        confirmed_at=now if confirmed else None,
    )
    session.add(subscriber)
    session.flush()
    return subscriber


def active_subscribers(session: Session) -> list[Subscriber]:
    return list(
        session.exec(
            select(Subscriber).where(Subscriber.status == "active").order_by(col(Subscriber.id))
        )
    )


def list_subscribers(session: Session, *, status: str | None = None) -> list[Subscriber]:
    query = select(Subscriber).order_by(col(Subscriber.id))
    if status:
        query = query.where(Subscriber.status == status)
    return list(session.exec(query))


def feedback_by_subscriber(
    session: Session, subscriber_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """{subscriber id: {paper key: +1 or -1}} for the given subscribers."""
    result: dict[int, dict[str, int]] = {i: {} for i in subscriber_ids}
    if not subscriber_ids:
        return result
    rows = session.exec(
        select(Feedback.subscriber_id, Feedback.paper_key, Feedback.value).where(
            col(Feedback.subscriber_id).in_(list(subscriber_ids))
        )
    )
    for subscriber_id, key, value in rows:
        result[subscriber_id][key] = value
    return result


def record_feedback(
    session: Session,
    *,
    subscriber_id: int,
    paper_key: str,
    value: int,
    edition_id: int | None = None,
    now: datetime | None = None,
) -> Feedback:
    """Set this subscriber's rating of a paper (+1/-1, or 0 to undo); idempotent."""
    existing = session.exec(
        select(Feedback).where(
            Feedback.subscriber_id == subscriber_id, Feedback.paper_key == paper_key
        )
    ).first()
    if existing is None:
        existing = Feedback(subscriber_id=subscriber_id, paper_key=paper_key, value=value)
    existing.value = value
    existing.edition_id = edition_id
    existing.created_at = now or utcnow()
    session.add(existing)
    session.flush()
    return existing


def like_counts(session: Session, paper_keys: Sequence[str]) -> dict[str, int]:
    """How many of our subscribers rated each paper up."""
    if not paper_keys:
        return {}
    counts: dict[str, int] = {}
    rows = session.exec(
        select(Feedback.paper_key).where(
            col(Feedback.paper_key).in_(list(paper_keys)), Feedback.value > 0
        )
    )
    for key in rows:
        counts[key] = counts.get(key, 0) + 1
    return counts


def active_seeds():
    """The query of active subscribers' seed lists."""
    return select(Subscriber.seed_papers).where(Subscriber.status == "active")


def referenced_paper_keys(session: Session) -> set[str]:
    """Every paper key an active subscriber seeded or rated: the pool profiles draw on."""
    keys = set(session.exec(select(Feedback.paper_key).distinct()))
    for seeds in session.exec(select(Subscriber.seed_papers).where(Subscriber.status == "active")):
        keys.update(seeds or ())
    return keys
