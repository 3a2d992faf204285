"""Signed, purpose-salted tokens for every link we mail (itsdangerous).

A token minted for one purpose never verifies for another (the salt is the purpose). Keys rotate:
pass several secrets oldest first; new tokens are signed with the newest, all listed keys verify.
"""

from __future__ import annotations

import base64
import json
import time
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


class _UncompressedSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe format without the zlib attempt, which halves the cost of a token
    (tokens are minted for every digest); loads() reads both forms."""

    def dump_payload(self, obj: Any) -> bytes:
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        return base64.urlsafe_b64encode(data).rstrip(b"=")


class Tokens:
    """Mints and verifies tokens for the purposes in MAX_AGE_S."""

    def __init__(self, secrets: str | Sequence[str]) -> None:
        self._secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        self._serializers: dict[str, URLSafeTimedSerializer] = {}

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        serializer = self._serializers.get(purpose)
        if serializer is None:
            if purpose not in MAX_AGE_S:
                raise ValueError(f"unknown token purpose {purpose!r}")
            serializer = _UncompressedSerializer(self._secrets, salt=f"digest.{purpose}")
            self._serializers[purpose] = serializer
        return serializer

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
            age = (now_s if now_s is not None else time.time()) - signed_at.timestamp()
            if age > max_age:
                raise TokenError("token expired", expired=True) from SignatureExpired("expired")
        return payload
