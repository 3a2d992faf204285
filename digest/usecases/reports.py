"""Read-only figures for operators: list size, fetch outcomes, editions and their deliveries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from digest.bootstrap import Services
from digest.models import (
    BounceEvent,
    Delivery,
    Edition,
    FeedState,
    Paper,
    Subscriber,
    utcnow,
)
from digest.store import deliveries as ledger


def collect_stats(services: Services, *, editions: int = 5) -> dict[str, Any]:
    """A JSON-ready summary of the service's state."""
    with Session(services.engine) as session:
        by_status = {
            status: count
            for status, count in session.exec(
                select(Subscriber.status, func.count()).group_by(Subscriber.status)
            )
        }
        papers = session.exec(select(func.count()).select_from(Paper)).one()
        sources = [
            {
                "source": f.source,
                "last_fetch_at": f.last_fetch_at,
                "last_status": f.last_status,
                "last_error": f.last_error,
                "fetched": f.fetched,
                "new": f.new,
            }
            for f in session.exec(select(FeedState).order_by(col(FeedState.source)))
        ]
        recent = session.exec(
            select(Edition).order_by(col(Edition.edition_date).desc()).limit(editions)
        )
        edition_rows = [
            {
                "date": e.edition_date,
                "status": e.status,
                "note": e.note,
                "deliveries": ledger.state_counts(session, e.id),
            }
            for e in recent
        ]
        week = utcnow() - timedelta(days=7)
        sent = session.exec(select(func.count()).where(col(Delivery.sent_at) > week)).one()
        events = {
            kind: count
            for kind, count in session.exec(
                select(BounceEvent.kind, func.count())
                .where(col(BounceEvent.received_at) > week)
                .group_by(BounceEvent.kind)
            )
        }
    rates = {
        "sent": sent,
        "hard_bounces": events.get("hard", 0),
        "soft_bounces": events.get("soft", 0),
        "complaints": events.get("complaint", 0),
        "hard_bounce_rate": events.get("hard", 0) / sent if sent else 0.0,
        "soft_bounce_rate": events.get("soft", 0) / sent if sent else 0.0,
        "complaint_rate": events.get("complaint", 0) / sent if sent else 0.0,
    }
    return {
        "subscribers": by_status,
        "confirmations_pending": by_status.get("pending", 0),
        "papers": papers,
        "sources": sources,
        "editions": edition_rows,
        "last_7_days": rates,
    }
