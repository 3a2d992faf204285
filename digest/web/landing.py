"""The landing page as bytes: rendered once per edition and fetch, served without rendering.

Its content (the trending list, the empty subscribe form) changes only when an edition is
planned or a source is fetched, so it is rendered once per such change and kept as encoded
bytes. The one per-visitor part, the CSRF token bound to the visitor's cookie, is spliced into
the stored bytes at a marker. Whether anything changed is asked of the database at most once
per `web.page_cache_s` seconds, in a worker thread, never on the event loop.

While the stored bytes are fresh, `FrontPageApp` answers a returning visitor's GET / before
the framework is entered (its middleware and routing would cost more than everything else this
request does); otherwise the request goes on to the `landing` route, which checks and rebuilds
the page off the event loop.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request, cookie_parser
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from digest.usecases.front_page import content_version
from digest.web.security import (
    DEFAULT_CSP,
    csrf_cookie_name,
    csrf_token,
    csrf_value,
    is_https,
    security_headers,
    set_csrf_cookie,
)
from digest.web.views import render, state


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
            lambda: content_version(services),
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


class FrontPageApp(FastAPI):
    """The FastAPI app, answering a returning visitor's GET / from the stored page first.

    While the stored bytes are fresh and the browser sends its CSRF cookie, the answer is
    written here, before any middleware or routing: the same headers SecurityMiddleware adds,
    the visitor's token spliced in. Everything else (a first visit that mints the cookie, a
    page due for a check) takes the ordinary path to the `landing` route.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = scope["type"] == "http" and scope["path"] == "/" and scope["method"] in _SAFE
        if front and await self._front_page(scope, send):
            return
        await super().__call__(scope, receive, send)

    async def _front_page(self, scope: Scope, send: Send) -> bool:
        cache: PageCache | None = getattr(self.state, "landing_cache", None)
        parts = cache.fresh() if cache is not None else None
        if parts is None:
            return False
        services = self.state.web.services
        cookie = _cookie(scope, csrf_cookie_name(services))
        if not cookie or len(cookie) > 100:
            return False
        body = csrf_value(services, cookie).encode().join(parts)
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            *_page_headers(is_https(services)),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )
        return True


_SAFE = ("GET", "HEAD")


@lru_cache(maxsize=2)
def _page_headers(https: bool) -> tuple[tuple[bytes, bytes], ...]:
    return (
        *security_headers(https),
        (b"content-security-policy", DEFAULT_CSP.encode()),
        (b"cache-control", b"no-store"),
    )


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope["headers"]:
        if key == b"cookie":
            return cookie_parser(value.decode("latin-1")).get(name)
    return None
