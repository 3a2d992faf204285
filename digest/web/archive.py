"""A subscriber's past digests: the archive page and the personal RSS feed.

Both list exactly what the emails showed (the picks stored on each delivered row, in order,
with their reasons), newest digest first; each archived digest opens as it was sent through
"view in browser", which replays those picks. Behind the subscriber's signed links only.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest.models import utcnow
from digest.usecases.past_digests import archived_digests
from digest.usecases.preferences import get_subscriber
from digest.web import links
from digest.web.security import PageError
from digest.web.views import page, render, state

router = APIRouter()
# Digests listed on the page and in the feed at most.
DIGESTS_SHOWN = 60
DIGESTS_IN_FEED = 10


def _subscriber(request: Request, sid: int, *, status: int = 404, kind: str = "gone"):
    subscriber = get_subscriber(state(request).services, sid)
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
