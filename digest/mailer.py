"""SMTP transport only (aiosmtplib): connections reused across messages, replies classified.

Outcome kinds: "sent" (250), "deferred" (4xx, and 552 which RFC 5321 says to treat as
temporary), "failed" (other 5xx), "relay" (connection refused, dropped, 421: the relay itself
is unwell, so the message is not at fault and is retried later without counting against it).
"""

from __future__ import annotations

import asyncio
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

import aiosmtplib
import numpy as np
from aiosmtplib.email import quote_address
from aiosmtplib.errors import (
    SMTPDataError,
    SMTPReadTimeoutError,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from aiosmtplib.protocol import (
    COMMAND_INJECTION_REGEX,
    MAX_LINE_LENGTH,
    MAX_RESPONSE_LENGTH,
    PERIOD_REGEX,
    SMTPProtocol,
    normalize_message_line_endings,
)
from aiosmtplib.response import SMTPResponse
from aiosmtplib.typing import SMTPStatus

from digest.settings import SmtpSettings


@dataclass(frozen=True, slots=True)
class SendOutcome:
    kind: str
    code: int | None = None
    text: str = ""
    # A "relay" outcome met while connecting (refused, greeted with 421/554): the relay is
    # unwell. Otherwise an open session was closed (421, dropped): that connection's trouble.
    connecting: bool = False

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


def _data_body(message: bytes) -> bytes:
    """The DATA payload for `message`: CRLF line ends, dot-stuffed, ending in CRLF.CRLF.

    Our messages come from render.build_message with CRLF line ends throughout, so only
    dot-stuffing (RFC 5321 section 4.5.2) is usually left to do. The check that they are
    CRLF-clean and the search for lines starting with a dot are vectorised comparisons (~15 us
    for 32 KB, where bytes.count or bytes.translate take ~30 us a pass and aiosmtplib's regexes
    ~0.9 ms for a 45 KB digest); bytes.replace (~30 us) runs only for bodies that need it.
    Anything not CRLF-clean gets exactly aiosmtplib's own normalisation: a bare LF left in
    place would let a line "\\n.\\r\\n" end the message early on some servers.
    """
    if not message:
        return b"\r\n.\r\n"
    octets = np.frombuffer(message, np.uint8)
    lf = octets == 10
    cr = octets == 13
    # CRLF-clean: every LF follows a CR and every CR precedes an LF. `b"\x01" in` is a memchr
    # over the comparison's bytes, several times faster than numpy's any() on 32 KB.
    if lf[0] or cr[-1] or b"\x01" in (lf[1:] != cr[:-1]).tobytes():
        return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"
    body = message if message.endswith(b"\r\n") else message + b"\r\n"
    if b"\x01" in (lf[:-1] & (octets[1:] == 46)).tobytes():  # a line starts with a dot
        body = body.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    return body + b".\r\n"


# A dot-atom address in plain ASCII: quote_address() would return it unchanged within <>, so
# the two email.utils.parseaddr passes (~20 us each) can be skipped. Anything else goes through
# aiosmtplib's quote_address and its command-injection checks.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
)


def _path(address: str) -> bytes:
    """`<address>` for MAIL FROM / RCPT TO; ValueError for what cannot go on a command line."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    quoted = quote_address(address).encode("ascii")
    if COMMAND_INJECTION_REGEX.search(quoted):
        raise ValueError(f"Address {address!r} contains a control character")
    return quoted


def _time_out(waiter: asyncio.Future[SMTPResponse]) -> None:
    if not waiter.done():
        waiter.set_exception(SMTPReadTimeoutError("Timed out waiting for server response"))
        waiter.exception()  # marked retrieved, as aiosmtplib does: the reader re-raises it


class _MailProtocol(SMTPProtocol):
    """aiosmtplib's protocol, plus one mail transaction with several replies in flight.

    SMTPProtocol parses one reply per data_received call and drops bytes that arrive while a
    parsed reply waits to be picked up: right for one command at a time, but with RFC 2920
    pipelining the replies to MAIL, RCPT and DATA can come in one segment or in several, and
    the second segment can arrive before the reader has woken. While `_in_transaction` is set
    every byte is kept, in order, and `_reply` takes replies from the buffer first. Connecting,
    TLS, EHLO, AUTH, RSET and QUIT stay aiosmtplib's own (the flag is off then).

    aiosmtplib builds its SMTPProtocol inside connect() with no hook for a subclass, so the
    client assigns this class to the connected protocol's __class__ (no new slots, no state
    but a class-level flag). It leans on SMTPProtocol's buffer, waiter, command lock and reply
    parser, hence the pin aiosmtplib>=5.1,<6; every delivery test sends through it.
    """

    _in_transaction = False

    def data_received(self, data: bytes) -> None:
        if not self._in_transaction:
            super().data_received(data)
            return
        waiter = self._response_waiter
        if waiter is None:
            return
        self._buffer.extend(data)
        if waiter.done():
            return  # the reader takes this reply first, then the buffer
        if len(self._buffer) > 4 * MAX_RESPONSE_LENGTH:
            del self._buffer[:]
            self._set_response_exception(
                waiter, SMTPResponseException(SMTPStatus.invalid_response, "Response too long")
            )
            return
        try:
            reply = self._take()
        except Exception as exc:  # a malformed reply: the reader gets the error
            self._set_response_exception(waiter, exc)
        else:
            if reply is not None:
                waiter.set_result(reply)

    def _take(self) -> SMTPResponse | None:
        """The next complete reply in the buffer, a one-line one without aiosmtplib's copies."""
        buffer = self._buffer
        end = buffer.find(b"\n")
        if end < 0:
            return None
        if end < MAX_LINE_LENGTH and buffer[3:4] != b"-" and buffer[:3].isdigit():
            text = buffer[4:end].strip(b" \t\r\n").decode("utf-8", "surrogateescape")
            reply = SMTPResponse(int(buffer[:3]), text)
            del buffer[: end + 1]
            return reply
        return self._read_response_from_buffer()  # multi-line, or malformed (raises)

    async def _reply(self, timeout: float | None) -> SMTPResponse:
        waiter = self._response_waiter
        if self._buffer and (waiter is None or not waiter.done()):
            reply = self._take()
            if reply is not None:
                return reply
        if waiter is None:
            raise SMTPServerDisconnected("Connection lost")
        timer = None if timeout is None else self._loop.call_later(timeout, _time_out, waiter)
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._response_waiter = None if self.transport is None else self._loop.create_future()

    async def transaction(
        self, mail: bytes, rcpt: bytes, body: bytes, *, pipelined: bool, timeout: float | None
    ) -> SMTPResponse:
        """MAIL, RCPT, DATA and the body; the final 250, or the first refusal raised.

        Pipelined, the three commands go in one write and their three replies are read in
        order before anything is decided, so the session is never left with replies unread:
        after a refused MAIL or RCPT the server answers DATA with 503/554, which is read and
        dropped; the refusal that counts is the first one. A 421 anywhere raises at once (the
        server is closing). Should a server answer DATA with 354 although no recipient was
        accepted, the session is out of step: _Desynchronised (an SMTPServerDisconnected that
        carries the refusal) tells the caller to close it and still classify the refusal.
        """
        lock = self._command_lock
        if lock is None:
            raise SMTPServerDisconnected("Server not connected")
        async with lock:
            self._in_transaction = True
            try:
                if pipelined:
                    self.write(mail + rcpt + b"DATA\r\n")
                    replies = []
                    for _ in range(3):
                        reply = await self._reply(timeout)
                        if reply.code == SMTPStatus.domain_unavailable:
                            raise SMTPResponseException(reply.code, reply.message)
                        replies.append(reply)
                    to_mail, to_rcpt, to_data = replies
                    refusal = _refusal(to_mail, to_rcpt, to_data)
                    if refusal is not None:
                        if to_data.code == SMTPStatus.start_input:
                            raise _Desynchronised(refusal)
                        raise refusal
                else:
                    self.write(mail)
                    _check_mail(await self._reply(timeout))
                    self.write(rcpt)
                    _check_rcpt(await self._reply(timeout))
                    self.write(b"DATA\r\n")
                    _check_data(await self._reply(timeout))
                self.write(body)
                reply = await self._reply(timeout)
                if reply.code != SMTPStatus.completed:
                    raise SMTPDataError(reply.code, reply.message)
                return reply
            finally:
                self._in_transaction = False
                self._response_pending = False


class _Desynchronised(SMTPServerDisconnected):
    """The server accepted DATA after refusing MAIL or RCPT: close the session, keep the code."""

    def __init__(self, refusal: SMTPResponseException) -> None:
        super().__init__(f"{refusal.code} {refusal.message} (then 354 to DATA)")
        self.refusal = refusal


def _check_mail(reply: SMTPResponse) -> None:
    if reply.code != SMTPStatus.completed:
        raise SMTPSenderRefused(reply.code, reply.message, "")


def _check_rcpt(reply: SMTPResponse) -> None:
    if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
        raise SMTPRecipientRefused(reply.code, reply.message, "")


def _check_data(reply: SMTPResponse) -> None:
    if reply.code != SMTPStatus.start_input:
        raise SMTPDataError(reply.code, reply.message)


def _refusal(
    to_mail: SMTPResponse, to_rcpt: SMTPResponse, to_data: SMTPResponse
) -> SMTPResponseException | None:
    """The first refusal among a pipelined group's replies, or None when all three are good."""
    if to_mail.code == 250 and to_rcpt.code in (250, 251) and to_data.code == 354:
        return None
    for check, reply in ((_check_mail, to_mail), (_check_rcpt, to_rcpt), (_check_data, to_data)):
        try:
            check(reply)
        except SMTPResponseException as refusal:
            return refusal
    return None


class _PreparedSMTP(aiosmtplib.SMTP):
    """aiosmtplib's client (connect, TLS modes, EHLO, AUTH, RSET, QUIT) with a leaner send.

    After connect() its protocol becomes a _MailProtocol and what the server offers is read
    once per session: PIPELINING (RFC 2920) means MAIL, RCPT and DATA in one write and two
    round trips per message instead of four; SIZE adds SIZE= to MAIL. Every read has the
    client's timeout; a timeout or a lost connection closes the client.
    """

    pipelining = False
    size = False

    async def connect(self, **kwargs: Any) -> SMTPResponse:
        response = await super().connect(**kwargs)
        try:
            await self._ehlo_or_helo_if_needed()
        except BaseException:
            self.close()
            raise
        if self.protocol is not None and self.protocol.__class__ is SMTPProtocol:
            self.protocol.__class__ = _MailProtocol
        self.pipelining = self.supports_extension("pipelining")
        self.size = self.supports_extension("size")
        return response

    async def send_prepared(self, mail: bytes, rcpt: bytes, body: bytes) -> SMTPResponse:
        protocol = self.protocol
        if not isinstance(protocol, _MailProtocol):
            raise SMTPServerDisconnected("Server not connected")
        try:
            return await protocol.transaction(
                mail, rcpt, body, pipelined=self.pipelining, timeout=self.timeout
            )
        except SMTPResponseException as exc:
            if exc.code == SMTPStatus.domain_unavailable or exc.code < 400:
                # 421: the server is closing. Below 400: a reply out of place or one that
                # does not parse, so the session is out of step.
                self.close()
            raise
        except BaseException:
            # Timed out, disconnected, cancelled or out of step: replies may still be owed.
            self.close()
            raise


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


class SmtpConnection:
    """One SMTP session kept open and reused; reconnects when the relay drops it."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._client: _PreparedSMTP | None = None
        self._sender = ""
        self._mail_from = b""

    def _new_client(self) -> _PreparedSMTP:
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

    async def _ensure(self) -> _PreparedSMTP:
        if self._client is None or not self._client.is_connected:
            self._client = self._new_client()
            await self._client.connect()
        return self._client

    def _mail_command(self, sender: str) -> bytes:
        if sender != self._sender:
            # One sender per run in practice: parse and check it once, not per message.
            path = _path(parseaddr(sender)[1] or sender.strip())
            self._sender, self._mail_from = sender, b"MAIL FROM:" + path
        return self._mail_from

    async def send(self, *, sender: str, recipient: str, message: bytes) -> SendOutcome:
        """Send pre-built message bytes to one recipient; never raises for SMTP trouble.

        An address that cannot go on an SMTP command line raises ValueError, as before.
        """
        mail = self._mail_command(sender)
        rcpt = b"RCPT TO:" + _path(recipient) + b"\r\n"
        body = _data_body(message)
        try:
            client = await self._ensure()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            # Refused, greeted with 421/554, EHLO or AUTH refused: the relay's trouble (or
            # ours), never this message's, so it is retried later rather than failed.
            await self.close()
            code = getattr(exc, "code", None)
            return SendOutcome("relay", code, _describe(exc), connecting=True)
        try:
            if client.size:
                mail = mail + b" SIZE=" + str(len(message)).encode() + b"\r\n"
            else:
                mail = mail + b"\r\n"
            reply = await client.send_prepared(mail, rcpt, body)
        except _Desynchronised as exc:
            await self.close()
            return _classify(exc.refusal.code, exc.refusal.message)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:
                await self.close()
                return _classify(exc.code, exc.message)
            if exc.code < 400:
                # Not a refusal but a reply out of place (or one that does not parse): the
                # session was out of step, so it is closed, and the message is not at fault.
                await self.close()
                return SendOutcome(
                    "relay", None, f"unexpected reply {exc.code} {exc.message}"[:300]
                )
            await self._reset()
            return _classify(exc.code, exc.message)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            await self.close()
            return SendOutcome("relay", None, _describe(exc))
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
    """Backs off the whole relay after failures to connect, so an outage costs no message.

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
        # Jitter only lengthens the pause: at the cap, never more than one probe per max_s.
        self._open_until = now + delay * random.uniform(1.0, 1.1)

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
