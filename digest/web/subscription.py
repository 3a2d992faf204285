"""Confirm, manage and unsubscribe: every route is reached from a signed link in an email.

GETs never change anything (mail scanners prefetch links); each change is a POST from a button.
The one exception to the CSRF rule is the RFC 8058 one-click POST, which mail providers send
without cookies: the signed token in its URL is its authority.
"""

from __future__ import annotations

import json

from fastapi import APIRouter
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest.models import Subscriber
from digest.usecases import leaving, personal_data, ratings, resubscribing, subscriptions
from digest.usecases.preferences import get_subscriber, update_preferences
from digest.usecases.seeds import fetch_missing_now
from digest.usecases.subscriptions import ConfirmResult
from digest.web import links
from digest.web.forms import FormError, parse_preferences, timezones
from digest.web.security import PageError, verify_csrf
from digest.web.views import form_data, page, state

router = APIRouter()


# --- confirm -----------------------------------------------------------------------------


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> HTMLResponse:
    web = state(request)
    sid, nonce = links.confirm_link(web.services, token, web.clock)
    blocked = subscriptions.check_confirmation(web.services, sid, nonce)
    if blocked is ConfirmResult.ALREADY:
        raise PageError(409, "confirm_used")
    if blocked is ConfirmResult.UNKNOWN:
        raise PageError(400, "invalid_link")
    return page(request, "confirm.html", token=token)


@router.post("/confirm/{token}", response_class=HTMLResponse)
async def confirm(request: Request, token: str) -> HTMLResponse:
    web = state(request)
    form = await form_data(request)
    verify_csrf(request, web.services, form)
    sid, nonce = links.confirm_link(web.services, token, web.clock)
    result = subscriptions.confirm(web.services, sid, nonce)
    if result is ConfirmResult.ALREADY:
        raise PageError(409, "confirm_used")
    if result is ConfirmResult.UNKNOWN:
        raise PageError(400, "invalid_link")
    manage = web.services.tokens.dumps("manage", sid)
    return page(request, "status.html", kind="confirmed", manage_token=manage)


# --- manage ------------------------------------------------------------------------------


def _values(subscriber: Subscriber) -> dict[str, str]:
    weight = subscriber.trending_weight
    return {
        "interests": subscriber.interests,
        "categories": " ".join(subscriber.categories),
        "seed_papers": " ".join(subscriber.seed_papers),
        "timezone": subscriber.timezone,
        "delivery_hour": str(subscriber.delivery_hour),
        "frequency": subscriber.frequency if subscriber.frequency != "paused" else "daily",
        "weekly_day": str(subscriber.weekly_day),
        "trending": str(round((weight if weight is not None else 0.25) * 100)),
        "nothing_new_note": "on" if subscriber.nothing_new_note else "",
        "authors": "\n".join(subscriber.authors),
        "muted": ", ".join(subscriber.muted),
        "papers_per_digest": str(subscriber.papers_per_digest or ""),
    }


def _subscriber(request: Request, token: str) -> Subscriber:
    web = state(request)
    sid = links.subscriber_link(web.services, "manage", token, web.clock)
    subscriber = get_subscriber(web.services, sid)
    if subscriber is None:
        raise PageError(404, "gone")
    return subscriber


def _manage_page(
    request, token, subscriber, *, values=None, errors=None, notice="", status=200, **extra
):
    services = state(request).services
    base = services.settings.web.base_url.rstrip("/")
    # The feed stops with the subscription (it answers 410), so its address is not offered.
    receiving = subscriber.status in ("active", "paused")
    feed = f"{base}/feed/{links.feed_token(services, subscriber.id)}.xml" if receiving else None
    return page(
        request,
        "manage.html",
        status=status,
        token=token,
        email=subscriber.email,
        subscriber_status=subscriber.status,
        schedule=_values(subscriber),
        values=values or _values(subscriber),
        errors=errors or {},
        notice=notice,
        ratings=ratings.list_ratings(services, subscriber.id),
        feed_url=feed,
        timezones=sorted(timezones()),
        library_entries=subscriber.library_text.count("\n") + 1 if subscriber.library_text else 0,
        **{"import_summary": "", "import_failed": False, "offered_authors": [], **extra},
    )


@router.get("/manage/{token}", response_class=HTMLResponse)
def manage_page(request: Request, token: str) -> HTMLResponse:
    return _manage_page(request, token, _subscriber(request, token))


@router.post("/manage/{token}", response_class=HTMLResponse)
async def manage_save(request: Request, token: str) -> HTMLResponse:
    services = state(request).services
    form = await form_data(request)
    verify_csrf(request, services, form)
    subscriber = _subscriber(request, token)
    try:
        prefs = parse_preferences(form, default_hour=services.settings.delivery.default_hour)
    except FormError as exc:
        values = _values(subscriber)
        values.update({k: v for k, v in form.items() if isinstance(v, str) and k in values})
        return _manage_page(
            request, token, subscriber, values=values, errors=exc.errors, status=400
        )
    update_preferences(services, subscriber.id, prefs)
    response = _manage_page(request, token, _subscriber(request, token), notice="saved")
    if prefs.seed_papers:
        # After the response: the arXiv API is asked at most once per interval.
        response.background = BackgroundTask(
            state(request).jobs.submit,
            fetch_missing_now,
            services,
            list(prefs.seed_papers),
        )
    return response


@router.post("/manage/{token}/pause", response_class=HTMLResponse)
async def manage_pause(request: Request, token: str) -> HTMLResponse:
    return await _toggle(request, token, paused=True)


@router.post("/manage/{token}/resume", response_class=HTMLResponse)
async def manage_resume(request: Request, token: str) -> HTMLResponse:
    return await _toggle(request, token, paused=False)


async def _toggle(request: Request, token: str, *, paused: bool) -> HTMLResponse:
    services = state(request).services
    verify_csrf(request, services, await form_data(request))
    subscriber = _subscriber(request, token)
    leaving.set_paused(services, subscriber.id, paused)
    notice = "paused" if paused else "resumed"
    return _manage_page(request, token, _subscriber(request, token), notice=notice)


@router.post("/manage/{token}/unsubscribe", response_class=HTMLResponse)
async def manage_unsubscribe(request: Request, token: str) -> HTMLResponse:
    services = state(request).services
    verify_csrf(request, services, await form_data(request))
    subscriber = _subscriber(request, token)
    leaving.unsubscribe(services, subscriber.id)
    return _unsubscribed_page(request, subscriber.id)


@router.post("/manage/{token}/ratings", response_class=HTMLResponse)
async def manage_undo_rating(request: Request, token: str) -> HTMLResponse:
    services = state(request).services
    form = await form_data(request)
    verify_csrf(request, services, form)
    subscriber = _subscriber(request, token)
    key = form.get("paper")
    if not isinstance(key, str) or not key or len(key) > 300:
        raise PageError(400, "bad_request")
    ratings.rate(services, subscriber.id, key, 0)
    return _manage_page(request, token, subscriber, notice="rating_undone")


@router.post("/manage/{token}/export")
async def manage_export(request: Request, token: str) -> Response:
    services = state(request).services
    verify_csrf(request, services, await form_data(request))
    subscriber = _subscriber(request, token)
    data = personal_data.export_data(services, subscriber.id)
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="my-digest-data.json"'},
    )


@router.post("/manage/{token}/delete", response_class=HTMLResponse)
async def manage_delete(request: Request, token: str) -> HTMLResponse:
    services = state(request).services
    form = await form_data(request)
    verify_csrf(request, services, form)
    subscriber = _subscriber(request, token)
    if form.get("confirm") != "yes":
        return _manage_page(request, token, subscriber, notice="delete_unconfirmed", status=400)
    personal_data.erase(services, subscriber.id)
    return page(request, "status.html", kind="erased")


# --- unsubscribe -------------------------------------------------------------------------


def _unsubscribed_page(request: Request, sid: int, token: str | None = None) -> HTMLResponse:
    """ "You are unsubscribed", with a button to take it back while that is possible."""
    services = state(request).services
    subscriber = get_subscriber(services, sid)
    can_resubscribe = subscriber is not None and subscriber.status == "unsubscribed"
    return page(
        request,
        "unsubscribe.html",
        unsubscribed=True,
        email=subscriber.email if subscriber else None,
        # The link they came by, or (from the manage page) a fresh one.
        token=(token or services.tokens.dumps("unsubscribe", sid)) if can_resubscribe else None,
    )


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    web = state(request)
    sid = links.subscriber_link(web.services, "unsubscribe", token, web.clock)
    subscriber = get_subscriber(web.services, sid)
    if subscriber is None or subscriber.status in ("unsubscribed", "suppressed"):
        return _unsubscribed_page(request, sid, token)  # reopened later: say so, ask nothing
    return page(
        request, "unsubscribe.html", unsubscribed=False, token=token, email=subscriber.email
    )


@router.post("/u/{token}", response_class=HTMLResponse)
async def unsubscribe(request: Request, token: str) -> HTMLResponse:
    """RFC 8058: `List-Unsubscribe=One-Click` in the body, no cookies, 200, no redirect."""
    web = state(request)
    form = await form_data(request)
    one_click = form.get("List-Unsubscribe") == "One-Click"
    if not one_click:
        verify_csrf(request, web.services, form)
    sid = links.subscriber_link(web.services, "unsubscribe", token, web.clock)
    # An erased subscriber is already as unsubscribed as can be: same answer, idempotent.
    leaving.unsubscribe(web.services, sid)
    return _unsubscribed_page(request, sid, token)


@router.post("/u/{token}/resubscribe", response_class=HTMLResponse)
async def resubscribe(request: Request, token: str) -> HTMLResponse:
    web = state(request)
    verify_csrf(request, web.services, await form_data(request))
    sid = links.subscriber_link(web.services, "unsubscribe", token, web.clock)
    if not resubscribing.resubscribe(web.services, sid):
        return _unsubscribed_page(request, sid, token)
    manage = web.services.tokens.dumps("manage", sid)
    return page(request, "status.html", kind="resubscribed", manage_token=manage)
