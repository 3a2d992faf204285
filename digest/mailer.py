"""SMTP transport only (aiosmtplib): connections reused across messages, replies classified.

Outcome kinds: "sent" (250), "deferred" (4xx, and 552 which RFC 5321 says to treat as
temporary), "failed" (other 5xx), "relay" (connection refused, dropped, 421: the relay itself
is unwell, so the message is not at fault and is retried later without counting against it).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.utils import parseaddr

import aiosmtplib

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


class SmtpConnection:
    """One SMTP session kept open and reused; reconnects when the relay drops it."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._client: aiosmtplib.SMTP | None = None

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self._settings
        context = ssl.create_default_context() if s.tls != "none" else None
        return aiosmtplib.SMTP(
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
            errors, reply = await client.sendmail(envelope_from, [recipient], message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusal = exc.recipients[0] if exc.recipients else None
            await self._reset()
            return _classify(refusal.code if refusal else None, refusal.message if refusal else "")
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:
                await self.close()
            else:
                await self._reset()
            return _classify(exc.code, exc.message)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            await self.close()
            return SendOutcome("relay", None, f"{type(exc).__name__}: {exc}"[:300])
        if errors:
            code, text = next(iter(errors.values()))
            return _classify(code, text)
        return SendOutcome("sent", 250, reply)

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
