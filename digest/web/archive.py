"""A subscriber's past digests: the archive page and the personal RSS feed.

Both list exactly what the emails showed (the picks stored on each delivered row, in order,
with their reasons), newest digest first; each archived digest opens as it was sent through
"view in browser", which replays those picks. Behind the subscriber's signed links only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest.bootstrap import Services
from digest.models import utcnow
from digest.paper_views import PaperView, paper_view
from digest.store import archive as archive_store
from digest.store import papers as paper_store
from digest.usecases import subscriptions
from digest.web import links
from digest.web.security import PageError
from digest.web.views import page, render, state

router = APIRouter()
# Digests listed on the page and in the feed at most.
DIGESTS_SHOWN = 60
DIGESTS_IN_FEED = 10


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
    with Session(services.engine) as session:
        rows = archive_store.delivered(session, subscriber_id, limit=limit)
        keys = [k for row, _ in rows for k in archive_store.shown_keys(row)]
        papers = paper_store.papers_by_keys(session, keys)
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


def _subscriber(request: Request, sid: int, *, status: int = 404, kind: str = "gone"):
    subscriber = subscriptions.get_subscriber(state(request).services, sid)
    if subscriber is None or subscriber.status in ("unsubscribed", "suppressed"):
        raise PageError(status, kind)
    return subscriber


@router.get("/archive/{token}", response_class=HTMLResponse)
def archive(request: Request, token: str) -> HTMLResponse:
    web = state(request)
    sid = links.archive_link(web.services, token, web.clock)
    _subscriber(request, sid)
    base = web.services.settings.web.base_url.rstrip("/")
    return page(
        request,
        "archive.html",
        digests=archived_digests(web.services, sid, limit=DIGESTS_SHOWN),
        feed_url=f"{base}/feed/{links.feed_token(web.services, sid)}.xml",
        headers={"Cache-Control": "private, no-store"},
    )


def _rfc822(moment: datetime | None) -> str:
    return (moment or utcnow()).strftime("%a, %d %b %Y %H:%M:%S +0000")


@router.get("/feed/{token}.xml")
def feed(request: Request, token: str) -> Response:
    web = state(request)
    sid = links.feed_link(web.services, token, web.clock)
    # 410, not 404: feed readers drop a feed that is gone for good instead of retrying.
    _subscriber(request, sid, status=410, kind="feed_gone")
    digests = archived_digests(web.services, sid, limit=DIGESTS_IN_FEED)
    base = web.services.settings.web.base_url.rstrip("/")
    items = [
        {
            "title": pick.paper.title,
            "link": pick.paper.url or base,
            # A paper is mailed to a subscriber once: its key and the digest's date name it.
            "guid": f"{pick.paper.key}@{digest.edition_date}",
            "published": _rfc822(digest.sent_at),
            "category": pick.section,
            "summary": (f"Why: {pick.why}. " if pick.why else "") + pick.paper.tldr,
        }
        for digest in digests
        for pick in digest.picks
    ]
    xml = render(
        web.services,
        "feed.xml",
        title="Your trending-papers digests",
        link=f"{base}/archive/{links.archive_token(web.services, sid)}",
        self_url=f"{base}/feed/{token}.xml",
        built=_rfc822(digests[0].sent_at if digests else None),
        items=items,
    )
    return Response(
        xml,
        media_type="application/rss+xml; charset=utf-8",
        headers={"Cache-Control": "private, max-age=900"},
    )
