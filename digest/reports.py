"""Read-only figures for operators: list size, fetch outcomes, editions and their deliveries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from digest.bootstrap import Services
from digest.models import Edition, FeedState, Paper, Subscriber
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
                "deliveries": ledger.state_counts(session, e.id),
            }
            for e in recent
        ]
    return {
        "subscribers": by_status,
        "papers": papers,
        "sources": sources,
        "editions": edition_rows,
    }
