"""The SMTP wire protocol of one mail transaction: the DATA payload, envelope paths, pipelining.

aiosmtplib does connecting, TLS, EHLO, AUTH, RSET and QUIT; MAIL, RCPT and DATA are sent here,
in one write when the server offers PIPELINING (RFC 2920), so a message costs two round trips
instead of four. Nothing here decides what a refusal means: connection.py classifies.
"""

from __future__ import annotations

import asyncio
import re
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


def data_body(message: bytes) -> bytes:
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


def address_path(address: str) -> bytes:
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


class MailProtocol(SMTPProtocol):
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
        accepted, the session is out of step: Desynchronised (an SMTPServerDisconnected that
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
                            raise Desynchronised(refusal)
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


class Desynchronised(SMTPServerDisconnected):
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


class PreparedSMTP(aiosmtplib.SMTP):
    """aiosmtplib's client (connect, TLS modes, EHLO, AUTH, RSET, QUIT) with a leaner send.

    After connect() its protocol becomes a MailProtocol and what the server offers is read
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
            self.protocol.__class__ = MailProtocol
        self.pipelining = self.supports_extension("pipelining")
        self.size = self.supports_extension("size")
        return response

    async def send_prepared(self, mail: bytes, rcpt: bytes, body: bytes) -> SMTPResponse:
        protocol = self.protocol
        if not isinstance(protocol, MailProtocol):
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
