"""Delivery reports (RFC 3464) and complaints (ARF, RFC 5965) read into one event per recipient.

Pure: bytes in, events out; digest.usecases.bounces decides what an event does to an address.

Classification, per recipient of a report, by its RFC 3463 enhanced status code:

- hard: 5.1.x (no such user, mailbox or domain), 5.2.1 (mailbox disabled), 5.4.4 (no route to
  the domain); a generic 5.0.0 counts as hard only when its diagnostic names a missing
  address.
- soft: every 4.x.x and `Action: delayed`, and the permanent codes that are not about the
  address: 5.2.2 mailbox full (RFC 3463 allows it as a persistent transient error, and the
  person who empties their mailbox should keep their digest), 5.2.3 / 5.3.4 message too big,
  5.7.x policy or spam refusals (about our message or our IP, not the mailbox).
- complaint: an ARF report with Feedback-Type abuse (or fraud/virus).
- delivered: `Action: delivered/relayed/expanded`.

Every event has a unique key (the report's Message-ID, or its content, plus the recipient), so
a replayed report can be recognised.
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value, parseaddr

COMPLAINT_TYPES = ("abuse", "fraud", "virus")
DELIVERED_ACTIONS = ("delivered", "relayed", "expanded")
_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MISSING_ADDRESS = re.compile(
    r"unknown|no such|does not exist|doesn't exist|not found|invalid (recipient|mailbox|address)"
    r"|unrouteable|disabled|inactive|no mailbox|not a registered|doesn't have an? [\w.-]+ account",
    re.I,
)


@dataclass(frozen=True)
class ReportEvent:
    """One recipient's outcome as a report states it (pure data, no database)."""

    kind: str  # hard | soft | complaint | delivered
    recipient: str | None
    status: str | None
    original_message_id: str | None
    key: str


def is_report(message: Message) -> bool:
    return message.get_content_type() == "multipart/report"


def classify_status(status: str | None, diagnostic: str = "", action: str = "failed") -> str:
    """hard, soft or delivered for one DSN recipient block (rules in the module docstring)."""
    action = action.strip().lower()
    if action in DELIVERED_ACTIONS:
        return "delivered"
    if action == "delayed":
        return "soft"
    found = _STATUS_RE.search(status or "")
    code = found.groups() if found else None
    if code is None or code[1:] == ("0", "0"):
        # A generic or missing status: the diagnostic's own enhanced code is more precise.
        better = _STATUS_RE.search(diagnostic)
        if better and better.groups()[1:] != ("0", "0"):
            code = better.groups()
    if code is None:
        return "soft"
    klass, subject, detail = code
    if klass != "5":
        return "soft"
    if subject == "1" or (subject, detail) in (("2", "1"), ("4", "4")):
        return "hard"
    if (subject, detail) == ("0", "0"):
        return "hard" if _MISSING_ADDRESS.search(diagnostic) else "soft"
    return "soft"


def _field(block: Message, name: str) -> str:
    value = block.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _address(value: str) -> str | None:
    """`rfc822; user@example.com` (or a bare address) as a lower-case address."""
    _, _, address = value.rpartition(";")
    _, parsed = parseaddr(address.strip())
    return parsed.lower() if "@" in parsed else None


def _parts(message: Message, content_type: str) -> list[Message]:
    return [p for p in message.walk() if p.get_content_type() == content_type]


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    return [HeaderParser(policy=compat32).parsestr(b) for b in re.split(r"\r?\n\r?\n", text) if b]


def _original_headers(report: Message) -> Message | None:
    """The returned message's headers (message/rfc822 or text/rfc822-headers), if included."""
    for part in report.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if kind == "text/rfc822-headers":
            data = part.get_payload(decode=True)
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else ""
            return HeaderParser(policy=compat32).parsestr(text)
    return None


def _key(*parts: str | None) -> str:
    return hashlib.sha256(
        "\x1f".join(p or "" for p in parts).encode("utf-8", "replace")
    ).hexdigest()


def parse_report(raw: bytes) -> list[ReportEvent]:
    """Every recipient event in a DSN or ARF message; [] for anything else."""
    message = email.message_from_bytes(raw, policy=compat32)
    if not is_report(message):
        return []
    original = _original_headers(message)
    original_id = _field(original, "Message-ID") if original is not None else ""
    original_to = _address(_field(original, "To")) if original is not None else None
    report_id = _field(message, "Message-ID")
    # get_param may return RFC 2231's (charset, language, value) tuple; collapsed to its value.
    kind = collapse_rfc2231_value(message.get_param("report-type") or "").lower()
    if kind == "feedback-report" or _parts(message, "message/feedback-report"):
        return _parse_arf(message, report_id, original_id, original_to)
    events = []
    for part in _parts(message, "message/delivery-status"):
        blocks = _blocks(part)
        # Basis of the replay key when the report has no Message-ID: its machine-readable part.
        body = report_id or str(part.get_payload())
        for block in blocks[1:] if len(blocks) > 1 else blocks:
            recipient = _address(_field(block, "Final-Recipient")) or _address(
                _field(block, "Original-Recipient")
            )
            action = _field(block, "Action")
            if not action and not recipient:
                continue  # the per-message block of a single-block report
            status_text = _field(block, "Status")
            code = _STATUS_RE.search(status_text)
            # Only the code is kept: "5.0.0 (permanent failure)" and the like carry comments.
            status = code.group(0) if code else (status_text[:20] or None)
            diagnostic = _field(block, "Diagnostic-Code")
            outcome = classify_status(status, diagnostic, action or "failed")
            events.append(
                ReportEvent(
                    outcome,
                    recipient or original_to,
                    status,
                    original_id or None,
                    _key("dsn", body, recipient, action, status),
                )
            )
    return events


def _parse_arf(
    message: Message, report_id: str, original_id: str, original_to: str | None
) -> list[ReportEvent]:
    parts = _parts(message, "message/feedback-report")
    fields = _blocks(parts[0]) if parts else []
    block = fields[0] if fields else Message()
    feedback_type = _field(block, "Feedback-Type").lower()
    if feedback_type not in COMPLAINT_TYPES:
        return []  # not-spam, auth-failure reports and the like ask nothing of us
    recipient = _address(_field(block, "Original-Rcpt-To")) or _address(
        _field(block, "Removal-Recipient")
    )
    basis = report_id or str(parts[0].get_payload() if parts else "") + original_id
    return [
        ReportEvent(
            "complaint",
            recipient or original_to,
            None,
            original_id or None,
            _key("arf", basis, recipient or original_to),
        )
    ]
