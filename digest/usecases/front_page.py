"""What the landing page shows: the recent papers, most upvoted first, and when that changes."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from digest.models import Paper, utcnow
from digest.store import freshness
from digest.store import papers as paper_store

if TYPE_CHECKING:
    from digest.bootstrap import Services


def trending(services: Services, *, limit: int) -> list[Paper]:
    """The recent papers, most upvoted first (the newer of two equals first)."""
    since = utcnow() - timedelta(days=services.settings.ranking.candidate_days)
    with services.reading() as tx:
        papers = paper_store.recent_papers(tx, since=since)
    papers.sort(key=lambda p: (-(p.upvotes or 0), -p.first_seen.timestamp()))
    return papers[:limit]


def content_version(services: Services) -> tuple[Any, ...]:
    """What the landing page depends on: the newest edition, the last fetch, today's date."""
    with services.reading() as tx:
        edition, fetched = freshness.content_marks(tx)
    return (edition, fetched, utcnow().date())
