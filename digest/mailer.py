"""SMTP transport only (aiosmtplib): connections reused across messages, replies classified.

Outcome kinds: "sent" (250), "deferred" (4xx, and 552 which RFC 5321 says to treat as
temporary), "failed" (other 5xx), "relay" (connection refused, dropped, 421: the relay itself
is unwell, so the message is not at fault and is retried later without counting against it).
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

import aiosmtplib
from aiosmtplib.response import SMTPResponse
from aiosmtplib.typing import Default, SMTPStatus

from digest.settings import SmtpSettings


@dataclass(frozen=True, slots=True)
class SendOutcome:
    kind: str
    code: int | None = None
    text: str = ""

    @property
    def hard_bounce(self) -> bool:
        """5.1.x (bad mailbox/address) and 5.2.1 (mailbox disabled) suppress the address."""
        return self.kind == "failed" and bool(
            self.text.startswith(("5.1.", "5.2.1"))
            or self.code in (550, 551, 553)
            and "5.1." in self.text
        )


def _classify(code: int | None, message: str) -> SendOutcome:
    text = " ".join((message or "").split())[:300]
    if code is None:
        return SendOutcome("relay", None, text)
    if code == 421:
        return SendOutcome("relay", code, text)
    if 400 <= code < 500 or code == 552:
        return SendOutcome("deferred", code, text)
    if code >= 500:
        return SendOutcome("failed", code, text)
    return SendOutcome("sent", code, text)


def _crlf_only(message: bytes) -> bool:
    lines = message.count(b"\r\n")
    return message.count(b"\n") == lines and message.count(b"\r") == lines


class _PreparedSMTP(aiosmtplib.SMTP):
    """aiosmtplib's client without its regular-expression passes over each body in DATA.

    Our messages come from render.build_message with CRLF line ends throughout, so only
    dot-stuffing (RFC 5321 section 4.5.2) is left to do, and bytes.replace does it about ten
    times faster than aiosmtplib's regexes (~0.9 ms of CPU per 45 KB digest, the largest single
    cost of sending). Anything else falls back to aiosmtplib's own path. This leans on
    SMTPProtocol's command lock and reply reader, hence the pin aiosmtplib>=5.1,<6; every
    delivery test sends through it.
    """

    async def data(  # type: ignore[override]
        self, message: str | bytes, /, *, timeout: Any = Default.token
    ) -> SMTPResponse:
        protocol = self.protocol
        if isinstance(message, str) or not _crlf_only(message) or protocol is None:
            return await super().data(message, timeout=timeout)
        await self._ehlo_or_helo_if_needed()
        if timeout is Default.token:
            timeout = self.timeout
        body = message if message.endswith(b"\r\n") else message + b"\r\n"
        body = (b"." if body.startswith(b".") else b"") + body.replace(b"\r\n.", b"\r\n..")
        lock = protocol._command_lock
        if lock is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        try:
            async with lock:
                protocol._response_pending = True
                protocol.write(b"DATA\r\n")
                start = await protocol.read_response(timeout=timeout)
                if start.code != SMTPStatus.start_input:
                    raise aiosmtplib.SMTPDataError(start.code, start.message)
                protocol._response_pending = True
                protocol.write(body + b".\r\n")
                response = await protocol.read_response(timeout=timeout)
                if response.code != SMTPStatus.completed:
                    raise aiosmtplib.SMTPDataError(response.code, response.message)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            self.close()
            raise
        return response


class SmtpConnection:
    """One SMTP session kept open and reused; reconnects when the relay drops it."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._client: aiosmtplib.SMTP | None = None

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self._settings
        context = ssl.create_default_context() if s.tls != "none" else None
        return _PreparedSMTP(
            hostname=s.host,
            port=s.port,
            local_hostname=s.local_hostname,
            timeout=s.timeout_s,
            use_tls=s.tls == "tls",
            start_tls=s.tls == "starttls",
            tls_context=context,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
        )

    async def _ensure(self) -> aiosmtplib.SMTP:
        if self._client is None or not self._client.is_connected:
            self._client = self._new_client()
            await self._client.connect()
        return self._client

    async def send(self, *, sender: str, recipient: str, message: bytes) -> SendOutcome:
        """Send pre-built message bytes to one recipient; never raises for SMTP trouble."""
        envelope_from = parseaddr(sender)[1]
        try:
            client = await self._ensure()
            # MAIL, RCPT, DATA by hand rather than sendmail(), which measures the SIZE with
            # one more regex pass over the body; ours is already CRLF-clean.
            size = [f"SIZE={len(message)}"] if client.supports_extension("size") else []
            await client.mail(envelope_from, options=size)
            await client.rcpt(recipient)
            reply = await client.data(message)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:
                await self.close()
            else:
                await self._reset()
            return _classify(exc.code, exc.message)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            await self.close()
            return SendOutcome("relay", None, f"{type(exc).__name__}: {exc}"[:300])
        return SendOutcome("sent", reply.code, reply.message)

    async def _reset(self) -> None:
        if self._client is not None and self._client.is_connected:
            try:
                await self._client.rset()
            except (aiosmtplib.SMTPException, OSError):
                await self.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """At most `rate` message starts per second across every connection (0 = unlimited).

    Slots are handed out on a fixed grid, so bursts never exceed one message per interval.
    """

    def __init__(
        self,
        rate: float,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._sleep = sleep
        self._clock = clock

    async def acquire(self) -> None:
        if not self._interval:
            return
        now = self._clock()
        slot = max(self._next, now)
        self._next = slot + self._interval
        if slot > now:
            await self._sleep(slot - now)


class RelayBreaker:
    """Backs off the whole relay after connection failures or 421, so an outage costs no message.

    Each consecutive failure doubles the pause (with jitter) up to `max_s`; a success closes the
    breaker. After `give_up_s` of continuous failure the caller stops and releases its work.
    """

    def __init__(
        self,
        *,
        base_s: float,
        max_s: float,
        give_up_s: float,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base, self._max, self._give_up = base_s, max_s, give_up_s
        self._sleep, self._clock = sleep, clock
        self.failures = 0
        self.trips = 0
        self._open_until = 0.0
        self._down_since: float | None = None
        self._probing = False

    @property
    def gave_up(self) -> bool:
        return self._down_since is not None and (self._clock() - self._down_since >= self._give_up)

    def failure(self) -> None:
        now = self._clock()
        if now < self._open_until:
            return  # another connection already reported this outage
        self._probing = False
        self.failures += 1
        self.trips += 1
        if self._down_since is None:
            self._down_since = now
        delay = min(self._base * 2 ** (self.failures - 1), self._max)
        self._open_until = now + delay * random.uniform(0.9, 1.0)

    def success(self) -> None:
        self._probing = False
        self.failures = 0
        self._down_since = None
        self._open_until = 0.0

    async def wait(self) -> None:
        """Return when this caller may talk to the relay: closed, or the one half-open probe."""
        while True:
            pause = self._open_until - self._clock()
            if pause > 0:
                await self._sleep(pause)
                continue
            if self.failures == 0:
                return
            if not self._probing:
                # Half-open: one connection probes the relay; the others wait for its verdict.
                self._probing = True
                return
            await self._sleep(min(self._base, 0.05))
