"""Rating links from the email (the /f/ form) and the digest in the browser.

A rating link's GET only shows a button: link scanners fetch every URL in a message, and a
vote must come from the reader. The POST is idempotent (the latest rating wins).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse

from digest.usecases import ratings
from digest.usecases.browser_digests import digest_html
from digest.usecases.preferences import get_subscriber
from digest.web import links
from digest.web.security import PageError, verify_csrf
from digest.web.views import form_data, page, state

router = APIRouter()
# The emailed digest keeps its inline styles; no script runs, nothing is framed or posted.
DIGEST_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


def _path(token: str, position: str | None, vote: str | None) -> str:
    return f"/f/{token}" if position is None else f"/f/{token}/{position}/{vote}"


def _rating_page(request, token, position, vote, *, template: str, **extra) -> HTMLResponse:
    web = state(request)
    sid, key, value, _ = links.feedback_link(web.services, token, web.clock, position, vote)
    title, url = ratings.paper_title(web.services, key)
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
    if get_subscriber(web.services, sid) is None:
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
    if not ratings.rate(web.services, sid, key, value, edition_id=edition):
        raise PageError(404, "gone")
    return _rating_page(request, token, position, vote, template="rated.html", notice="")


@router.post("/f/{token}/undo", response_class=HTMLResponse)
@router.post("/f/{token}/{position}/{vote}/undo", response_class=HTMLResponse)
async def rate_undo(
    request: Request, token: str, position: str | None = None, vote: str | None = None
) -> HTMLResponse:
    web, (sid, key, _, edition) = await _feedback_post(request, token, position, vote)
    if not ratings.rate(web.services, sid, key, 0, edition_id=edition):
        raise PageError(404, "gone")
    return _rating_page(request, token, position, vote, template="rated.html", notice="undone")


@router.post("/f/{token}/more", response_class=HTMLResponse)
@router.post("/f/{token}/{position}/{vote}/more", response_class=HTMLResponse)
async def rate_more(
    request: Request, token: str, position: str | None = None, vote: str | None = None
) -> HTMLResponse:
    web, (sid, key, _, edition) = await _feedback_post(request, token, position, vote)
    if not ratings.rate_more(web.services, sid, key, edition_id=edition):
        raise PageError(404, "gone")
    return _rating_page(request, token, position, vote, template="rated.html", notice="more")


@router.get("/view/{token}", response_class=HTMLResponse)
def view(request: Request, token: str) -> HTMLResponse:
    web = state(request)
    sid, edition_id = links.view_link(web.services, token, web.clock)
    html = digest_html(web.services, sid, edition_id)
    if html is None:
        raise PageError(404, "gone")
    return HTMLResponse(html, headers={"Content-Security-Policy": DIGEST_CSP})
