"""One-click rating from the email, safe from link scanners.

A rating link (`/r/<token>/3u`) names a delivered digest by a short signed token and the
paper by its number. Its GET changes nothing: the page holds the rating form, which the page's
script submits on load, so a person's click records the rating at once (with Undo on the next
page) while a scanner that only fetches the URL records nothing. Without script, the person
presses the button.
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse

from digest.usecases import ratings
from digest.usecases.preferences import get_subscriber
from digest.web import links
from digest.web.security import PageError, verify_csrf
from digest.web.views import form_data, page, state

router = APIRouter()
_SLOT = re.compile(r"([1-9][0-9]{0,2})([ud])")


def _resolve(request: Request, token: str, slot: str) -> tuple[int, str, int, int]:
    """(subscriber id, paper key, +1 or -1, edition id) of a short rating link."""
    web = state(request)
    match = _SLOT.fullmatch(slot)
    if match is None:
        raise PageError(400, "invalid_link")
    delivery_id = links.rate_link(web.services, token, web.clock)
    rated = ratings.rated_digest(web.services, delivery_id)
    if rated is None:
        raise PageError(404, "gone")
    number = int(match.group(1))
    if number > len(rated.paper_keys):
        raise PageError(400, "invalid_link")
    value = 1 if match.group(2) == "u" else -1
    return rated.subscriber_id, rated.paper_keys[number - 1], value, rated.edition_id


def _page(request: Request, token: str, slot: str, key: str, value: int, template: str, **extra):
    title, url = ratings.paper_title(state(request).services, key)
    return page(
        request,
        template,
        rate_path=f"/r/{token}/{slot}",
        value=value,
        title=title,
        url=url,
        **extra,
    )


@router.get("/r/{token}/{slot}", response_class=HTMLResponse)
def rate_page(request: Request, token: str, slot: str) -> HTMLResponse:
    sid, key, value, _ = _resolve(request, token, slot)
    if get_subscriber(state(request).services, sid) is None:
        raise PageError(404, "gone")
    return _page(request, token, slot, key, value, "rate_once.html")


async def _post(request: Request, token: str, slot: str) -> tuple[int, str, int, int]:
    verify_csrf(request, state(request).services, await form_data(request))
    return _resolve(request, token, slot)


@router.post("/r/{token}/{slot}", response_class=HTMLResponse)
async def rate(request: Request, token: str, slot: str) -> HTMLResponse:
    sid, key, value, edition = await _post(request, token, slot)
    if not ratings.rate(state(request).services, sid, key, value, edition_id=edition):
        raise PageError(404, "gone")
    return _page(request, token, slot, key, value, "rated.html", notice="")


@router.post("/r/{token}/{slot}/undo", response_class=HTMLResponse)
async def rate_undo(request: Request, token: str, slot: str) -> HTMLResponse:
    sid, key, value, edition = await _post(request, token, slot)
    if not ratings.rate(state(request).services, sid, key, 0, edition_id=edition):
        raise PageError(404, "gone")
    return _page(request, token, slot, key, value, "rated.html", notice="undone")


@router.post("/r/{token}/{slot}/more", response_class=HTMLResponse)
async def rate_more(request: Request, token: str, slot: str) -> HTMLResponse:
    sid, key, _, edition = await _post(request, token, slot)
    if not ratings.rate_more(state(request).services, sid, key, edition_id=edition):
        raise PageError(404, "gone")
    return _page(request, token, slot, key, 1, "rated.html", notice="more")
