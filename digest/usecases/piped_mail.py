"""Use case: one message piped in by an existing MTA (`digest inbound --stdin`, e.g. a Postfix
pipe transport). The envelope comes from the options when given, else from the headers the MTA
adds; the message is then handled as if it had come over SMTP."""

from __future__ import annotations

import email
from collections.abc import Sequence
from email.policy import default as default_policy
from email.utils import getaddresses, parseaddr
from typing import TYPE_CHECKING

from digest.usecases.inbound import InboundResult, handle

if TYPE_CHECKING:
    from digest.bootstrap import Services


class NoMessage(ValueError):
    """Nothing but whitespace was piped in."""


def handle_piped(
    services: Services, raw: bytes, *, mail_from: str | None, rcpt_tos: Sequence[str]
) -> InboundResult:
    """Handle one piped message and send its replies; NoMessage if `raw` is blank."""
    if not raw.strip():
        raise NoMessage("no message on standard input")
    return handle(
        services,
        raw,
        mail_from=mail_from if mail_from is not None else stdin_sender(raw),
        rcpt_tos=list(rcpt_tos) or stdin_recipients(raw),
    )


def stdin_recipients(raw: bytes) -> list[str]:
    """Recipients of a piped message from the headers an MTA adds (the token is what counts)."""
    message = email.message_from_bytes(raw, policy=default_policy)
    names = ("X-Original-To", "Delivered-To", "To", "Cc")
    values = [str(v) for name in names for v in (message.get_all(name) or [])]
    return [address for _, address in getaddresses(values) if address]


def stdin_sender(raw: bytes) -> str | None:
    """The envelope sender of a piped message: its Return-Path, if any."""
    message = email.message_from_bytes(raw, policy=default_policy)
    return_path = message.get("Return-Path")
    return parseaddr(str(return_path))[1] if return_path is not None else None
