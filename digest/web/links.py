"""Reading the signed links we mail: purpose, expiry and payload shape, or a PageError.

Every malformed, forged, truncated or wrong-purpose token gets the same 400 page, so a prober
learns nothing from the answer; only an expired confirmation link gets its own page (410),
because the person needs to be told to ask for a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from digest.bootstrap import Services
from digest.tokens import TokenError
from digest.web.security import PageError


def _load(services: Services, purpose: str, token: str, now_s: float) -> Any:
    if len(token) > 1000:
        raise PageError(400, "invalid_link")
    try:
        return services.tokens.loads(purpose, token, now_s=now_s)
    except TokenError as exc:
        if exc.expired and purpose == "confirm":
            raise PageError(410, "confirm_expired") from exc
        if exc.expired:
            raise PageError(410, "link_expired") from exc
        raise PageError(400, "invalid_link") from exc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def subscriber_link(services: Services, purpose: str, token: str, clock: Callable[[], float]):
    """The subscriber id of a manage or unsubscribe link."""
    payload = _load(services, purpose, token, clock())
    if not _is_int(payload):
        raise PageError(400, "invalid_link")
    return payload


def confirm_link(services: Services, token: str, clock: Callable[[], float]) -> tuple[int, str]:
    payload = _load(services, "confirm", token, clock())
    if not (isinstance(payload, list) and len(payload) == 2 and _is_int(payload[0])):
        raise PageError(400, "invalid_link")
    if not isinstance(payload[1], str):
        raise PageError(400, "invalid_link")
    return payload[0], payload[1]


def feedback_link(
    services: Services,
    token: str,
    clock: Callable[[], float],
    position: str | None = None,
    vote: str | None = None,
) -> tuple[int, str, int, int]:
    """(subscriber id, paper key, +1 or -1, edition id) of a rating link.

    Two shapes are accepted: one token per digest naming its papers, with the paper's position
    and the vote in the path (`/f/<token>/<position>/up`), and one token per vote
    (`/f/<token>`, payload [subscriber, paper key, ±1, edition]).
    """
    payload = _load(services, "feedback", token, clock())
    if not (isinstance(payload, list) and len(payload) in (3, 4)):
        raise PageError(400, "invalid_link")
    if position is None:
        if len(payload) != 4:
            raise PageError(400, "invalid_link")
        sid, key, value, edition = payload
    else:
        if len(payload) != 3 or vote not in ("up", "down") or not position.isdigit():
            raise PageError(400, "invalid_link")
        sid, edition, keys = payload
        if not isinstance(keys, list) or int(position) >= len(keys):
            raise PageError(400, "invalid_link")
        key, value = keys[int(position)], 1 if vote == "up" else -1
    if not (_is_int(sid) and isinstance(key, str) and value in (1, -1) and _is_int(edition)):
        raise PageError(400, "invalid_link")
    return sid, key, value, edition


def rate_link(services: Services, token: str, clock: Callable[[], float]) -> int:
    """The delivery id a short rating link names."""
    try:
        return services.tokens.short_loads("rate", token, now_s=clock())
    except TokenError as exc:
        raise PageError(
            410 if exc.expired else 400, "link_expired" if exc.expired else "invalid_link"
        ) from exc


def view_link(services: Services, token: str, clock: Callable[[], float]) -> tuple[int, int]:
    payload = _load(services, "view", token, clock())
    if not (isinstance(payload, list) and len(payload) == 2):
        raise PageError(400, "invalid_link")
    if not (_is_int(payload[0]) and _is_int(payload[1])):
        raise PageError(400, "invalid_link")
    return payload[0], payload[1]


def feed_token(services: Services, subscriber_id: int) -> str:
    """A long-lived link to the personal RSS feed (a view token with its own payload shape)."""
    return services.tokens.dumps("view", ["feed", subscriber_id])


def archive_token(services: Services, subscriber_id: int) -> str:
    """A long-lived link to the subscriber's archive of past digests (a view token)."""
    return services.tokens.dumps("view", ["archive", subscriber_id])


def archive_link(services: Services, token: str, clock: Callable[[], float]) -> int:
    payload = _load(services, "view", token, clock())
    if not (isinstance(payload, list) and len(payload) == 2 and payload[0] == "archive"):
        raise PageError(400, "invalid_link")
    if not _is_int(payload[1]):
        raise PageError(400, "invalid_link")
    return payload[1]


def feed_link(services: Services, token: str, clock: Callable[[], float]) -> int:
    payload = _load(services, "view", token, clock())
    if not (isinstance(payload, list) and len(payload) == 2 and payload[0] == "feed"):
        raise PageError(400, "invalid_link")
    if not _is_int(payload[1]):
        raise PageError(400, "invalid_link")
    return payload[1]
