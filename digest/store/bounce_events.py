"""Bounce and complaint events: one row per recipient of a parsed report, keyed for replays."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from digest.models import BounceEvent


def seen(session: Session, event_key: str) -> bool:
    query = select(BounceEvent.id).where(BounceEvent.event_key == event_key)
    return session.exec(query).first() is not None


def add(
    session: Session,
    *,
    event_key: str,
    kind: str,
    status: str | None,
    email_hash: str,
    edition_id: int | None,
    now: datetime,
) -> bool:
    """Record one event; False when the same key was recorded meanwhile (rolled back then)."""
    session.add(
        BounceEvent(
            event_key=event_key,
            kind=kind,
            status=status,
            email_hash=email_hash,
            edition_id=edition_id,
            received_at=now,
            day=now.date(),
        )
    )
    try:
        session.flush()
    except IntegrityError:
        session.rollback()  # the same report processed concurrently: that one counts
        return False
    return True


def soft_days(session: Session, email_hash: str, *, since: datetime, until: datetime) -> int:
    """Distinct days with a soft bounce for this address in (since, until]."""
    query = select(func.count(func.distinct(BounceEvent.day))).where(
        BounceEvent.email_hash == email_hash,
        BounceEvent.kind == "soft",
        col(BounceEvent.received_at) > since,
        col(BounceEvent.received_at) <= until,
    )
    return int(session.exec(query).one())


def complaints(session: Session, *, since: datetime, until: datetime) -> int:
    """Complaints received in (since, until]."""
    query = select(func.count()).where(
        BounceEvent.kind == "complaint",
        col(BounceEvent.received_at) > since,
        col(BounceEvent.received_at) <= until,
    )
    return int(session.exec(query).one())
