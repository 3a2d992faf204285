"""Ledger queries of the calendar: where each subscriber's last digest ended, and rows skipped
or held with their reason."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from digest.models import Delivery

_NO_SYNC = {"synchronize_session": False}


def previous_window_ends(
    session: Session, subscriber_ids: Sequence[int], *, edition_id: int | None
) -> dict[int, datetime]:
    """For each subscriber, where the papers of their latest delivered digest (of another
    edition) ended; absent when none was ever delivered. Rows from before window_end was kept
    fall back to the moment they were sent."""
    if not subscriber_ids:
        return {}
    end = func.max(func.coalesce(Delivery.window_end, Delivery.sent_at))
    query = (
        select(Delivery.subscriber_id, end)
        .where(
            col(Delivery.subscriber_id).in_(list(subscriber_ids)),
            Delivery.state == "sent",
            col(Delivery.reason).is_(None),
        )
        .group_by(Delivery.subscriber_id)
    )
    if edition_id is not None:
        query = query.where(Delivery.edition_id != edition_id)
    return {subscriber: moment for subscriber, moment in session.exec(query) if moment}


def set_window_end(session: Session, delivery_ids: Sequence[int], *, at: datetime) -> None:
    """Record when these digests' papers were chosen (one UPDATE per batch, not per message)."""
    if not delivery_ids:
        return
    session.execute(
        update(Delivery).where(col(Delivery.id).in_(list(delivery_ids))).values(window_end=at),
        execution_options=_NO_SYNC,
    )
    session.commit()


def reasons(session: Session, edition_id: int) -> dict[str, int]:
    """How many rows of the edition were skipped or held, by reason."""
    rows = session.exec(
        select(Delivery.reason, func.count())
        .where(Delivery.edition_id == edition_id, col(Delivery.reason).is_not(None))
        .group_by(Delivery.reason)
    )
    return {reason: count for reason, count in rows if reason}


def earliest_open_window(
    session: Session,
    edition_id: int | None,
    *,
    now: datetime,
    first_days: float,
    weekly_first_days: float,
    max_days: float,
) -> datetime | None:
    """The earliest window start among the subscribers this edition still has to send to
    (open rows), so the edition reads only the papers some window holds; None when it has no
    open row (previews, a finished edition): then the caller reads the widest window."""
    from datetime import timedelta

    from digest.models import Subscriber

    if not edition_id:
        return None
    waiting = (
        select(Delivery.subscriber_id)
        .where(
            Delivery.edition_id == edition_id,
            col(Delivery.state).in_(("pending", "deferred", "claimed")),
        )
        .scalar_subquery()
    )
    previous = (
        select(
            Delivery.subscriber_id.label("subscriber_id"),
            func.max(func.coalesce(Delivery.window_end, Delivery.sent_at)).label("end"),
        )
        .where(
            col(Delivery.subscriber_id).in_(waiting),
            Delivery.edition_id != edition_id,
            Delivery.state == "sent",
            col(Delivery.reason).is_(None),
        )
        .group_by(Delivery.subscriber_id)
        .subquery()
    )
    earliest = session.exec(select(func.min(previous.c.end))).one()
    firsts = session.exec(
        select(Subscriber.frequency, func.count())
        .where(
            col(Subscriber.id).in_(waiting),
            col(Subscriber.id).not_in(select(previous.c.subscriber_id)),
        )
        .group_by(Subscriber.frequency)
    ).all()
    starts = [earliest] if earliest is not None else []
    for frequency, count in firsts:
        if count:
            days = weekly_first_days if frequency == "weekly" else first_days
            starts.append(now - timedelta(days=days))
    if not starts:
        return None
    return max(min(starts), now - timedelta(days=max_days))
