"""One SMTP session to the relay, kept open and reused, and what each send came to.

Outcome kinds: "sent" (250), "deferred" (4xx, and 552 which RFC 5321 says to treat as
temporary), "failed" (other 5xx), "relay" (connection refused, dropped, 421: the relay itself
is unwell, so the message is not at fault and is retried later without counting against it).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.utils import parseaddr

import aiosmtplib

from digest.mailer.protocol import Desynchronised, PreparedSMTP, address_path, data_body
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


def classify(code: int | None, message: str) -> SendOutcome:
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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


class SmtpConnection:
    """One SMTP session kept open and reused; reconnects when the relay drops it."""

    def __init__(
        self, settings: SmtpSettings, *, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self._settings = settings
        # Built once by bootstrap (with smtp.ca_file for a private CA) and shared by every
        # connection; None leaves the choice to aiosmtplib: the system's trusted CAs.
        self._tls_context = tls_context
        self._client: PreparedSMTP | None = None
        self._sender = ""
        self._mail_from = b""

    def _new_client(self) -> PreparedSMTP:
        s = self._settings
        return PreparedSMTP(
            hostname=s.host,
            port=s.port,
            local_hostname=s.local_hostname,
            timeout=s.timeout_s,
            use_tls=s.tls == "tls",
            start_tls=s.tls == "starttls",
            tls_context=self._tls_context if s.tls != "none" else None,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
        )

    async def _ensure(self) -> PreparedSMTP:
        if self._client is None or not self._client.is_connected:
            self._client = self._new_client()
            await self._client.connect()
        return self._client

    def _mail_command(self, sender: str) -> bytes:
        if sender != self._sender:
            # One sender per run in practice: parse and check it once, not per message.
            path = address_path(parseaddr(sender)[1] or sender.strip())
            self._sender, self._mail_from = sender, b"MAIL FROM:" + path
        return self._mail_from

    async def send(self, *, sender: str, recipient: str, message: bytes) -> SendOutcome:
        """Send pre-built message bytes to one recipient; never raises for SMTP trouble.

        An address that cannot go on an SMTP command line raises ValueError, as before.
        """
        mail = self._mail_command(sender)
        rcpt = b"RCPT TO:" + address_path(recipient) + b"\r\n"
        body = data_body(message)
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
        except Desynchronised as exc:
            await self.close()
            return classify(exc.refusal.code, exc.refusal.message)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:
                await self.close()
                return classify(exc.code, exc.message)
            if exc.code < 400:
                # Not a refusal but a reply out of place (or one that does not parse): the
                # session was out of step, so it is closed, and the message is not at fault.
                await self.close()
                return SendOutcome(
                    "relay", None, f"unexpected reply {exc.code} {exc.message}"[:300]
                )
            await self._reset()
            return classify(exc.code, exc.message)
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
