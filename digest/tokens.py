"""Signed, purpose-salted tokens for every link we mail (itsdangerous).

A token minted for one purpose never verifies for another (the salt is the purpose). Keys rotate:
pass several secrets oldest first; new tokens are signed with the newest, all listed keys verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes

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
    # Short rating links: a delivery id the server resolves to the digest's papers.
    "rate": 60 * DAY_S,
}
# Bytes of HMAC-SHA256 kept in a short token: 96 bits, 16 characters.
SHORT_MAC_BYTES = 12


class TokenError(Exception):
    """A token is forged, truncated, for another purpose, or expired (`expired` tells which)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class _UncompressedSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe format without the zlib attempt, which halves the cost of a token
    (tokens are minted for every digest); loads() reads both forms."""

    def dump_payload(self, obj: Any) -> bytes:
        return _payload(obj)


# json.dumps with non-default options builds a new encoder on every call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


def _payload(obj: Any) -> bytes:
    # An int's JSON is its decimal form; most tokens carry only a subscriber id.
    data = str(obj) if type(obj) is int else _JSON.encode(obj)
    return base64.urlsafe_b64encode(data.encode("ascii")).rstrip(b"=")
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class Tokens:
    """Mints and verifies tokens for the purposes in MAX_AGE_S."""

    def __init__(self, secrets: str | Sequence[str]) -> None:
        self._secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        self._serializers: dict[str, URLSafeTimedSerializer] = {}
        self._minters: dict[str, hmac.HMAC] = {}
        self._stamp: tuple[int, bytes] = (-1, b"")
        self._short_keys: dict[tuple[str, str], hmac.HMAC] = {}

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        serializer = self._serializers.get(purpose)
        if serializer is None:
            if purpose not in MAX_AGE_S:
                raise ValueError(f"unknown token purpose {purpose!r}")
            serializer = _UncompressedSerializer(self._secrets, salt=f"digest.{purpose}")
            self._serializers[purpose] = serializer
        return serializer

    def _minter(self, purpose: str) -> hmac.HMAC:
        """An HMAC already keyed with itsdangerous' own derived key for this purpose's newest
        secret: itsdangerous derives the key and builds a new HMAC for every token, a third of
        a digest's cost in tokens."""
        minter = self._minters.get(purpose)
        if minter is None:
            signer = self._serializer(purpose).make_signer()
            minter = hmac.new(signer.derive_key(), digestmod="sha1")
            probe = minter.copy()
            probe.update(b"probe")
            if base64_encode(probe.digest()) != signer.get_signature(b"probe"):
                raise RuntimeError("itsdangerous no longer signs with HMAC-SHA1 of its own key")
            self._minters[purpose] = minter
        return minter

    def dumps(self, purpose: str, payload: Any, *, now_s: float | None = None) -> str:
        """Byte for byte what the serializer's dumps() gives (tested), so loads() and every link
        already mailed are unaffected; only the per-token key derivation is skipped."""
        mac = self._minter(purpose).copy()
        seconds = int(now_s if now_s is not None else time.time())
        if self._stamp[0] != seconds:
            self._stamp = (seconds, base64_encode(int_to_bytes(seconds)))
        value = _payload(payload) + b"." + self._stamp[1]
        mac.update(value)
        return (value + b"." + base64_encode(mac.digest())).decode("ascii")

    def _short_mac(self, secret: str, purpose: str, body: str) -> str:
        keyed = self._short_keys.get((secret, purpose))
        if keyed is None:
            key = hashlib.sha256(f"digest.short.{purpose}\x00{secret}".encode()).digest()
            keyed = self._short_keys[(secret, purpose)] = hmac.new(key, digestmod=hashlib.sha256)
        mac = keyed.copy()
        mac.update(body.encode("ascii"))
        return base64.urlsafe_b64encode(mac.digest()[:SHORT_MAC_BYTES]).decode("ascii")

    def short(self, purpose: str, number: int, *, now_s: float | None = None) -> str:
        """A short signed, expiring token for a row id: "<id>.<day>.<mac>", ~26 characters
        (the id and the issue day in base 36, a truncated HMAC-SHA256), where a full token
        naming a digest's papers took hundreds. The server resolves the id; nothing else is in
        it."""
        if purpose not in MAX_AGE_S or number < 0:
            raise ValueError(f"bad short token request {purpose!r} {number!r}")
        day = int((now_s if now_s is not None else time.time()) // DAY_S)
        body = f"{_base36(number)}.{_base36(day)}"
        return f"{body}.{self._short_mac(self._secrets[-1], purpose, body)}"

    def short_loads(self, purpose: str, token: str, *, now_s: float | None = None) -> int:
        """The id of a short token, or TokenError (forged, other purpose, or expired)."""
        parts = token.split(".")
        if len(parts) != 3 or len(token) > 64:
            raise TokenError("invalid token")
        body = f"{parts[0]}.{parts[1]}"
        if not any(
            hmac.compare_digest(self._short_mac(secret, purpose, body), parts[2])
            for secret in self._secrets
        ):
            raise TokenError("invalid token")
        try:
            number, day = int(parts[0], 36), int(parts[1], 36)
        except ValueError as exc:
            raise TokenError("invalid token") from exc
        max_age = MAX_AGE_S[purpose]
        today = (now_s if now_s is not None else time.time()) // DAY_S
        if max_age is not None and (today - day) * DAY_S > max_age:
            raise TokenError("token expired", expired=True)
        return number

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


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out
