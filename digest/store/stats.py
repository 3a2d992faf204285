"""Figures for operators, read only: list size, papers, fetch outcomes, editions and what came
of their deliveries (delivery states, bounce and complaint reports)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from digest.models import BounceEvent, Delivery, Edition, FeedState, Paper, Subscriber
from digest.store import deliveries as ledger
from digest.store.uow import Tx


def subscribers_by_status(tx: Tx) -> dict[str, int]:
    query = select(Subscriber.status, func.count()).group_by(Subscriber.status)
    return {status: count for status, count in tx.exec(query)}


def paper_count(tx: Tx) -> int:
    return tx.exec(select(func.count()).select_from(Paper)).one()


def feed_states(tx: Tx) -> list[FeedState]:
    """Each source's last fetch outcome, by source name."""
    return list(tx.exec(select(FeedState).order_by(col(FeedState.source))))


def sent_since(tx: Tx, since: datetime) -> int:
    return tx.exec(select(func.count()).where(col(Delivery.sent_at) > since)).one()


def reports_since(tx: Tx, since: datetime) -> dict[str, int]:
    """Bounce and complaint reports received since then, by kind (hard, soft, complaint)."""
    query = (
        select(BounceEvent.kind, func.count())
        .where(col(BounceEvent.received_at) > since)
        .group_by(BounceEvent.kind)
    )
    return {kind: count for kind, count in tx.exec(query)}


def recent_editions(tx: Tx, limit: int) -> list[dict[str, Any]]:
    """The newest editions: date, status and its reason, delivery counts by state."""
    query = select(Edition).order_by(col(Edition.edition_date).desc()).limit(limit)
    return [
        {
            "date": e.edition_date,
            "status": e.status,
            "note": e.note,
            "deliveries": ledger.state_counts(tx, e.id),
        }
        for e in tx.exec(query)
    ]


def _edition_dict(tx: Tx, edition: Edition) -> dict[str, Any]:
    events = dict(
        tx.exec(
            select(BounceEvent.kind, func.count())
            .where(BounceEvent.edition_id == edition.id)
            .group_by(BounceEvent.kind)
        ).all()
    )
    return {
        "id": edition.id,
        "date": edition.edition_date.isoformat(),
        "status": edition.status,
        "note": edition.note,
        "created_at": edition.created_at.isoformat(),
        "send_by": edition.send_by.isoformat() if edition.send_by else None,
        "deliveries": ledger.state_counts(tx, edition.id),
        "reports": events,
    }


def list_editions(tx: Tx, *, limit: int = 30) -> list[dict[str, Any]]:
    """The newest editions with their delivery counts by state and report counts by kind."""
    rows = tx.exec(select(Edition).order_by(col(Edition.edition_date).desc()).limit(limit))
    return [_edition_dict(tx, e) for e in rows]


def find_edition(tx: Tx, ref: str) -> dict[str, Any] | None:
    """An edition by date (YYYY-MM-DD) or by id, as list_editions shows it."""
    edition: Edition | None = None
    if ref.isdigit():
        edition = tx.get(Edition, int(ref))
    else:
        try:
            day = date.fromisoformat(ref)
        except ValueError:
            return None
        edition = tx.exec(select(Edition).where(Edition.edition_date == day)).first()
    return _edition_dict(tx, edition) if edition else None


def open_deliveries(tx: Tx, edition_id: int) -> int:
    """Deliveries of the edition still to be sent (open or claimed): a progress bar's total."""
    counts = ledger.state_counts(tx, edition_id)
    return sum(counts.get(state, 0) for state in (*ledger.OPEN_STATES, "claimed"))
