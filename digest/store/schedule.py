"""Queries the worker needs around the ledger: past editions to expire, who is already planned."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from digest.models import Delivery, Edition
from digest.store import deliveries as ledger


def editions_past_send_by(session: Session, *, now: datetime) -> list[Edition]:
    """Editions whose window has closed but which were never marked expired."""
    return list(
        session.exec(
            select(Edition)
            .where(col(Edition.send_by).is_not(None), col(Edition.send_by) <= now)
            .where(col(Edition.status).in_(("planned", "sending")))
            .order_by(col(Edition.edition_date))
        )
    )


def expire_past_editions(session: Session, *, now: datetime) -> list[tuple[Edition, int]]:
    """Expire every edition past its send_by: (edition, rows expired) for each one closed now.

    Stale news is not sent late (listmonk #1801): a worker that comes back after the next
    edition has started closes the old one instead of mailing it.
    """
    from digest.usecases import edition_states

    closed = []
    for edition in editions_past_send_by(session, now=now):
        rows = ledger.expire_open(session, edition.id)
        # The state follows the rows: all sent is "done", some lost "partly failed"; an edition
        # with no row at all stays "expired".
        if ledger.state_counts(session, edition.id):
            edition.status = "expired"
            edition_states.refresh(session, edition)
        closed.append((edition, rows))
    return closed


def planned_subscriber_ids(session: Session, edition_id: int) -> set[int]:
    """Subscribers who already have a row in this edition (whatever its state)."""
    return set(
        session.exec(select(Delivery.subscriber_id).where(Delivery.edition_id == edition_id))
    )


def has_sendable(session: Session, edition_id: int, *, now: datetime, lease_s: float) -> bool:
    """True when a row can be claimed now: open and due, or claimed with its lease run out."""

    stale = now - timedelta(seconds=lease_s)
    row = session.exec(
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.edition_id == edition_id,
            or_(
                col(Delivery.state).in_(ledger.OPEN_STATES)
                & or_(
                    col(Delivery.next_attempt_at).is_(None), col(Delivery.next_attempt_at) <= now
                ),
                (Delivery.state == "claimed") & (col(Delivery.claimed_at) < stale),
            ),
        )
    ).one()
    return bool(row)


def edition_by_date(session: Session, edition_date: date) -> Edition | None:
    return session.exec(select(Edition).where(Edition.edition_date == edition_date)).first()
