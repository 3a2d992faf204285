"""The landing page as bytes: rendered once per edition and fetch, served without rendering.

Its content (the trending list, the empty subscribe form) changes only when an edition is
planned or a source is fetched, so it is rendered once per such change and kept as encoded
bytes. The one per-visitor part, the CSRF token bound to the visitor's cookie, is spliced into
the stored bytes at a marker. Whether anything changed is asked of the database at most once
per `web.page_cache_s` seconds, in a worker thread, never on the event loop.

While the stored bytes are fresh, `FrontPage` answers GET / before the framework is entered
(inside the security headers middleware, outside routing and FastAPI's layers, which would
cost more than everything else this request does); when they must be checked or rebuilt the
request goes on to the `landing` route, which does that off the event loop.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from digest.models import Edition, FeedState, utcnow
from digest.web.security import csrf_token, set_csrf_cookie
from digest.web.views import render, state


def content_version(engine: Engine) -> tuple[Any, ...]:
    """What the landing page depends on: the newest edition, the last fetch, today's date."""
    with engine.connect() as connection:
        edition, fetched = connection.execute(
            select(
                select(func.max(Edition.id)).scalar_subquery(),
                select(func.max(FeedState.last_fetch_at)).scalar_subquery(),
            )
        ).one()
    return (edition, fetched, utcnow().date())


@dataclass
class _Entry:
    version: tuple[Any, ...]
    parts: list[bytes]  # the page split at each CSRF token


class PageCache:
    """One page's bytes per content version, checked against the database at most every
    `max_age_s` seconds."""

    def __init__(
        self,
        render_page: Callable[[str], str],
        version: Callable[[], tuple[Any, ...]],
        *,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._render = render_page
        self._version = version
        self._max_age_s = max_age_s
        self._clock = clock
        self._entry: _Entry | None = None
        self._checked = -float("inf")
        self._lock = asyncio.Lock()

    def _build(self) -> _Entry:
        version = self._version()
        if self._entry is not None and self._entry.version == version:
            return self._entry
        marker = f"csrf-slot-{secrets.token_hex(16)}"
        return _Entry(version, self._render(marker).encode("utf-8").split(marker.encode()))

    def fresh(self) -> list[bytes] | None:
        """The stored page if it needs no check yet, else None."""
        if self._entry is not None and self._clock() - self._checked < self._max_age_s:
            return self._entry.parts
        return None

    async def parts(self) -> list[bytes]:
        if self._entry is not None and self._clock() - self._checked < self._max_age_s:
            return self._entry.parts
        async with self._lock:  # one refresh at a time; the others wait for its result
            if self._entry is None or self._clock() - self._checked >= self._max_age_s:
                self._entry = await run_in_threadpool(self._build)
                self._checked = self._clock()
        return self._entry.parts


def landing_cache(app_state: Any) -> PageCache:
    """The app's landing page cache, built on first use."""
    cache = getattr(app_state, "landing_cache", None)
    if cache is None:
        from digest.web.pages import landing_context

        services = app_state.web.services

        def render_page(token: str) -> str:
            return render(services, "landing.html", csrf_token=token, **landing_context(services))

        cache = PageCache(
            render_page,
            lambda: content_version(services.engine),
            max_age_s=services.settings.web.page_cache_s,
        )
        app_state.landing_cache = cache
    return cache


def _page_response(request: Request, services: Any, parts: list[bytes]) -> Response:
    body = csrf_token(request, services).encode().join(parts)
    response = Response(body, media_type="text/html; charset=utf-8")
    set_csrf_cookie(request, services, response)
    return response


async def landing(request: Request) -> Response:
    parts = await landing_cache(request.app.state).parts()
    return _page_response(request, state(request).services, parts)


class FrontPage:
    """ASGI middleware: GET / and HEAD / from the stored landing page while it is fresh."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in _SAFE:
            cache = getattr(scope["app"].state, "landing_cache", None)
            parts = cache.fresh() if cache is not None else None
            if parts is not None:
                request = Request(scope, receive)
                response = _page_response(request, scope["app"].state.web.services, parts)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


_SAFE = ("GET", "HEAD")
