"""Rating links from the email (the /f/ form) and the digest in the browser.

A rating link's GET only shows a button: link scanners fetch every URL in a message, and a
vote must come from the reader. The POST is idempotent (the latest rating wins).
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from fastapi import APIRouter
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse

from digest.models import Edition, Subscriber, utcnow
from digest.sources.ids import paper_key
from digest.store import archive as archive_store
from digest.store import papers as paper_store
from digest.texts import unicode_text
from digest.usecases import editions, subscriptions
from digest.usecases.digests import replay_digest
from digest.web import links
from digest.web.security import PageError, verify_csrf
from digest.web.views import form_data, page, state

router = APIRouter()
# The emailed digest keeps its inline styles; no script runs, nothing is framed or posted.
DIGEST_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


def _paper_title(request: Request, key: str) -> tuple[str, str | None]:
    with Session(state(request).services.engine) as session:
        paper = paper_store.get_paper(session, paper_key(key))
    if paper is None:
        return key, None
    return unicode_text(paper.title), paper.url


def _path(token: str, position: str | None, vote: str | None) -> str:
    return f"/f/{token}" if position is None else f"/f/{token}/{position}/{vote}"


def _rating_page(request, token, position, vote, *, template: str, **extra) -> HTMLResponse:
    web = state(request)
    sid, key, value, _ = links.feedback_link(web.services, token, web.clock, position, vote)
    title, url = _paper_title(request, key)
    return page(
        request,
        template,
        rate_path=_path(token, position, vote),
        value=value,
        title=title,
        url=url,
        **extra,
    )


@router.get("/f/{token}", response_class=HTMLResponse)
@router.get("/f/{token}/{position}/{vote}", response_class=HTMLResponse)
def rate_page(
    request: Request, token: str, position: str | None = None, vote: str | None = None
) -> HTMLResponse:
    web = state(request)
    sid, _, _, _ = links.feedback_link(web.services, token, web.clock, position, vote)
    if subscriptions.get_subscriber(web.services, sid) is None:
        raise PageError(404, "gone")
    return _rating_page(request, token, position, vote, template="rate.html")


async def _feedback_post(request: Request, token: str, position, vote):
    web = state(request)
    verify_csrf(request, web.services, await form_data(request))
    return web, links.feedback_link(web.services, token, web.clock, position, vote)


@router.post("/f/{token}", response_class=HTMLResponse)
@router.post("/f/{token}/{position}/{vote}", response_class=HTMLResponse)
async def rate(
    request: Request, token: str, position: str | None = None, vote: str | None = None
) -> HTMLResponse:
    web, (sid, key, value, edition) = await _feedback_post(request, token, position, vote)
    if not subscriptions.rate(web.services, sid, key, value, edition_id=edition):
        raise PageError(404, "gone")
    return _rating_page(request, token, position, vote, template="rated.html", notice="")


@router.post("/f/{token}/undo", response_class=HTMLResponse)
@router.post("/f/{token}/{position}/{vote}/undo", response_class=HTMLResponse)
async def rate_undo(
    request: Request, token: str, position: str | None = None, vote: str | None = None
) -> HTMLResponse:
    web, (sid, key, _, edition) = await _feedback_post(request, token, position, vote)
    if not subscriptions.rate(web.services, sid, key, 0, edition_id=edition):
        raise PageError(404, "gone")
    return _rating_page(request, token, position, vote, template="rated.html", notice="undone")


@router.post("/f/{token}/more", response_class=HTMLResponse)
@router.post("/f/{token}/{position}/{vote}/more", response_class=HTMLResponse)
async def rate_more(
    request: Request, token: str, position: str | None = None, vote: str | None = None
) -> HTMLResponse:
    web, (sid, key, _, edition) = await _feedback_post(request, token, position, vote)
    subscriptions.rate(web.services, sid, key, 1, edition_id=edition)
    if not subscriptions.more_like_this(web.services, sid, key):
        raise PageError(404, "gone")
    return _rating_page(request, token, position, vote, template="rated.html", notice="more")


def _digest(request: Request, subscriber: Subscriber, edition: Edition | None):
    """This subscriber's digest of `edition` (today's, unsaved, when there is none)."""
    services = state(request).services
    with Session(services.engine, expire_on_commit=False) as session:
        if edition is None:
            now = utcnow()
            edition = Edition(id=0, edition_date=now.date(), status="preview")
        else:
            now = datetime.combine(edition.edition_date, time(23, 59), tzinfo=UTC)
            now = min(now, utcnow())
        row = (
            archive_store.sent_row(session, edition_id=edition.id, subscriber_id=subscriber.id)
            if edition.id
            else None
        )
        shown = list(row.picks or []) if row is not None else []
        if shown:
            # The message went out: show exactly what it showed, not today's re-ranking,
            # with the same short rating links.
            digest = replay_digest(
                services, session, edition, subscriber, shown, delivery_id=row.id
            )
            keys = [key for key, _, _ in digest.picks]
        else:
            context = editions.edition_context(services, session, edition, now=now)
            [(digest, keys, _)] = editions.digests_for(services, session, context, [subscriber])
        papers = paper_store.papers_by_keys(session, keys)
    return digest, [papers[k] for k in keys if k in papers], edition


@router.get("/view/{token}", response_class=HTMLResponse)
def view(request: Request, token: str) -> HTMLResponse:
    web = state(request)
    sid, edition_id = links.view_link(web.services, token, web.clock)
    subscriber = subscriptions.get_subscriber(web.services, sid)
    if subscriber is None:
        raise PageError(404, "gone")
    with Session(web.services.engine, expire_on_commit=False) as session:
        edition = session.get(Edition, edition_id) if edition_id else None
    digest, _, _ = _digest(request, subscriber, edition)
    return HTMLResponse(digest.html, headers={"Content-Security-Policy": DIGEST_CSP})
