"""Signed, purpose-salted tokens for every link we mail (itsdangerous).

A token minted for one purpose never verifies for another (the salt is the purpose). Keys rotate:
pass several secrets oldest first; new tokens are signed with the newest, all listed keys verify.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

DAY_S = 86_400
# Seconds a token of each purpose stays valid; None means it never expires. Unsubscribe links
# must keep working for at least 30 days after the mail (CAN-SPAM), so they do not expire.
MAX_AGE_S: dict[str, int | None] = {
    "confirm": 3 * DAY_S,
    "unsubscribe": None,
    "manage": 60 * DAY_S,
    "feedback": 60 * DAY_S,
    "view": 365 * DAY_S,
    "reply": 60 * DAY_S,
}


class TokenError(Exception):
    """A token is forged, truncated, for another purpose, or expired (`expired` tells which)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class Tokens:
    """Mints and verifies tokens for the purposes in MAX_AGE_S."""

    def __init__(self, secrets: str | Sequence[str]) -> None:
        self._secrets = [secrets] if isinstance(secrets, str) else list(secrets)

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        if purpose not in MAX_AGE_S:
            raise ValueError(f"unknown token purpose {purpose!r}")
        return URLSafeTimedSerializer(self._secrets, salt=f"digest.{purpose}")

    def dumps(self, purpose: str, payload: Any) -> str:
        return self._serializer(purpose).dumps(payload)

    def loads(self, purpose: str, token: str, *, now_s: float | None = None) -> Any:
        """The payload, or TokenError. `now_s` lets tests move the clock."""
        serializer = self._serializer(purpose)
        max_age = MAX_AGE_S[purpose]
        try:
            payload, signed_at = serializer.loads(token, max_age=None, return_timestamp=True)
        except BadSignature as exc:
            raise TokenError("invalid token") from exc
        if max_age is not None:
            import time

            age = (now_s if now_s is not None else time.time()) - signed_at.timestamp()
            if age > max_age:
                raise TokenError("token expired", expired=True) from SignatureExpired("expired")
        return payload
