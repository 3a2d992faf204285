"""Request-level defences: body size cap, security headers, client IP, CSRF, per-IP limits.

The middleware is plain ASGI (no BaseHTTPMiddleware) so it sees every response, including
errors and static files, and can refuse an oversized body before any route parses it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import math
import re
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.bootstrap import Services
from digest.usecases import limits
from digest.usecases.subscriptions import keyed_hash

CSRF_FIELD = "csrf_token"
# Pages render with a strict policy: our own script and stylesheet only, no inline code, no
# framing, forms may only post back to us.
DEFAULT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class PageError(Exception):
    """Ends a request with a status page: `kind` picks the wording in templates/web/status.html."""

    def __init__(self, status: int, kind: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(kind)
        self.status = status
        self.kind = kind
        self.headers = headers or {}


def is_https(services: Services) -> bool:
    return services.settings.web.base_url.lower().startswith("https://")


def security_headers(https: bool) -> list[tuple[bytes, bytes]]:
    """The headers every response carries (a page may set its own CSP and cache policy)."""
    headers = [
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        # Our URLs carry tokens; no other site may see them in a Referer.
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"interest-cohort=(), camera=(), microphone=()"),
    ]
    if https:
        headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
    return headers


class SecurityMiddleware:
    """Caps request bodies (413) and adds the security headers to every response."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        https: bool,
        too_large: Callable[[], bytes],
        uploads: tuple[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        # (path pattern, cap): the one route that takes a file gets its own, larger cap.
        self.uploads = (re.compile(uploads[0]), uploads[1]) if uploads else None
        self.https = https
        self.too_large = too_large
        self._fixed = self._headers()  # the same for every response: built once

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return security_headers(self.https)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in self._fixed if h[0] not in present]
                if b"content-security-policy" not in present:
                    extra.append((b"content-security-policy", DEFAULT_CSP.encode()))
                if b"cache-control" not in present:
                    # Pages behind tokens must not linger in shared caches.
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        max_body = self.max_body
        if self.uploads and self.uploads[0].match(scope.get("path", "")):
            max_body = self.uploads[1]
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body):
            await self._refuse(send_with_headers)
            return
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            # Read the whole (small) body now, so a chunked upload cannot slip past the cap.
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_body:
                    await self._refuse(send_with_headers)
                    return
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    async def _refuse(self, send: Send) -> None:
        body = self.too_large()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _networks(entries: Sequence[str]) -> tuple[list[Any], set[str]]:
    networks, names = [], set()
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry)  # a non-IP peer name, e.g. a unix socket proxy
    return networks, names


def _trusted(host: str, networks: list[Any], names: set[str]) -> bool:
    if host in names:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def client_ip(request: Request, trusted_proxies: Sequence[str]) -> str:
    """The client's address. X-Forwarded-For counts only when the peer is a trusted proxy.

    The header is read right to left, skipping our own proxies: the first address not ours is
    the client (anything further left was written by the client and proves nothing).
    """
    peer = request.client.host if request.client else "unknown"
    networks, names = _networks(trusted_proxies)
    if not _trusted(peer, networks, names):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks, names):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from a proxy we trust: fall back to the proxy itself
    return peer


def check_ip_limit(services: Services, ip: str) -> None:
    """Count one subscribe attempt from this IP; 429 with Retry-After beyond the limit."""
    web = services.settings.web
    key = "ip:" + keyed_hash(services, "ip", ip)[:40]
    verdict = limits.hit(services, key, [(web.ip_limit, web.ip_window_s)])
    if not verdict.allowed:
        retry = str(max(1, math.ceil(verdict.retry_after_s)))
        raise PageError(429, "rate_limited", headers={"Retry-After": retry})


def csrf_cookie_name(services: Services) -> str:
    # The __Host- prefix pins the cookie to our origin, but browsers require Secure for it.
    return "__Host-csrf" if is_https(services) else "csrf"


def csrf_value(services: Services, cookie: str) -> str:
    """The form token bound to this CSRF cookie."""
    return _csrf_hmac(services.settings.secret(), cookie)


@functools.lru_cache(maxsize=4096)
def _csrf_hmac(secret: str, cookie: str) -> str:
    # A returning browser sends the same cookie on every page: its token is computed once.
    return hmac.new(f"{secret}:csrf".encode(), cookie.encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request, services: Services) -> str:
    """The form token for this browser, minting the cookie it is bound to if there is none."""
    cookie = getattr(request.state, "csrf_cookie", None) or request.cookies.get(
        csrf_cookie_name(services)
    )
    if not cookie or len(cookie) > 100:
        cookie = secrets.token_urlsafe(32)
        request.state.csrf_new = cookie
    request.state.csrf_cookie = cookie
    return csrf_value(services, cookie)


def set_csrf_cookie(request: Request, services: Services, response: Any) -> None:
    new = getattr(request.state, "csrf_new", None)
    if new:
        response.set_cookie(
            csrf_cookie_name(services),
            new,
            path="/",
            secure=is_https(services),
            httponly=True,
            samesite="lax",
        )


def verify_csrf(request: Request, services: Services, form: Any) -> None:
    """403 unless the form's token is the one bound to this browser's cookie."""
    cookie = request.cookies.get(csrf_cookie_name(services))
    sent = form.get(CSRF_FIELD)
    if not cookie or not isinstance(sent, str):
        raise PageError(403, "csrf")
    if not hmac.compare_digest(csrf_value(services, cookie), sent):
        raise PageError(403, "csrf")
