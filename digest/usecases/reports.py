"""Read-only figures for operators: list size, fetch outcomes, editions and their deliveries."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from digest.store import stats

if TYPE_CHECKING:
    from digest.bootstrap import Services


def collect_stats(services: Services, *, editions: int = 5) -> dict[str, Any]:
    """A JSON-ready summary of the service's state."""
    week = services.clock() - timedelta(days=7)
    with services.reading() as tx:
        by_status = stats.subscribers_by_status(tx)
        papers = stats.paper_count(tx)
        sources = [
            {
                "source": f.source,
                "last_fetch_at": f.last_fetch_at,
                "last_status": f.last_status,
                "last_error": f.last_error,
                "fetched": f.fetched,
                "new": f.new,
            }
            for f in stats.feed_states(tx)
        ]
        edition_rows = stats.recent_editions(tx, editions)
        sent = stats.sent_since(tx, week)
        events = stats.reports_since(tx, week)
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


def list_editions(services: Services, *, limit: int = 30) -> list[dict[str, Any]]:
    """The newest editions with their delivery counts by state and report counts by kind."""
    with services.reading() as tx:
        return stats.list_editions(tx, limit=limit)


def find_edition(services: Services, ref: str) -> dict[str, Any] | None:
    """One edition by date (YYYY-MM-DD) or id, as list_editions shows it; None if unknown."""
    with services.reading() as tx:
        return stats.find_edition(tx, ref)


def deliveries_to_send(services: Services, edition_id: int) -> int:
    """How many of the edition's deliveries are still to be sent (a progress bar's total)."""
    with services.reading() as tx:
        return stats.open_deliveries(tx, edition_id)
