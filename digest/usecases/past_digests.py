"""A subscriber's past digests, for the archive page and the personal RSS feed.

Both list exactly what the emails showed (the picks stored on each delivered row, in order,
with their reasons), newest digest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from digest.paper_views import PaperView, paper_view
from digest.store import archive as archive_store
from digest.store import papers as paper_store

if TYPE_CHECKING:
    from digest.bootstrap import Services


@dataclass(frozen=True)
class ArchivedPick:
    paper: PaperView
    why: str
    section: str


@dataclass(frozen=True)
class ArchivedDigest:
    edition_date: str
    sent_at: datetime | None
    view_url: str
    picks: list[ArchivedPick]


def archived_digests(services: Services, subscriber_id: int, *, limit: int) -> list[ArchivedDigest]:
    """The subscriber's delivered digests, newest first, each with what it showed."""
    base = services.settings.web.base_url.rstrip("/")
    with services.reading() as tx:
        rows = archive_store.delivered(tx, subscriber_id, limit=limit)
        keys = [k for row, _ in rows for k in archive_store.shown_keys(row)]
        papers = paper_store.papers_by_keys(tx, keys)
    max_chars = services.settings.email.max_tldr_chars
    views = {key: paper_view(p, max_tldr_chars=max_chars) for key, p in papers.items()}
    digests = []
    for row, edition in rows:
        shown = row.picks or [{"id": k, "why": "", "kind": "match"} for k in row.paper_keys]
        picks = [
            ArchivedPick(
                views[p["id"]],
                p.get("why", ""),
                "Trending" if p.get("kind") == "trending" else "For you",
            )
            for p in shown
            if p["id"] in views
        ]
        token = services.tokens.dumps("view", [subscriber_id, edition.id])
        digests.append(
            ArchivedDigest(
                edition_date=edition.edition_date.strftime("%A %d %B %Y"),
                sent_at=row.sent_at,
                view_url=f"{base}/view/{token}",
                picks=picks,
            )
        )
    return digests
