"""Bounces and complaints: parse delivery reports (RFC 3464) and complaints (ARF, RFC 5965), act.

Classification, per recipient of a report, by its RFC 3463 enhanced status code:

- hard: 5.1.x (no such user, mailbox or domain), 5.2.1 (mailbox disabled), 5.4.4 (no route to
  the domain); a generic 5.0.0 counts as hard only when its diagnostic names a missing
  address. One is enough to suppress the address.
- soft: every 4.x.x and `Action: delayed`, and the permanent codes that are not about the
  address: 5.2.2 mailbox full (RFC 3463 allows it as a persistent transient error, and the
  person who empties their mailbox should keep their digest), 5.2.3 / 5.3.4 message too big,
  5.7.x policy or spam refusals (about our message or our IP, not the mailbox). Suppressed only
  after soft bounces on 3 distinct days within 7: a day counts once however many arrive.
- complaint: an ARF report with Feedback-Type abuse (or fraud/virus). One is enough.
- delivered: `Action: delivered/relayed/expanded`, recorded and otherwise ignored; it never
  undoes a suppression (state only moves towards suppressed).

The original message is found by our own Message-ID (`<edition-E.sub-S.tag@…>`, verified by
its HMAC tag), by a signed token in a VERP bounce address, or else by the reported address.
Every event has a unique key (the report's Message-ID, or its content, plus the recipient), so
a replayed report adds no row and changes nothing.
"""

from __future__ import annotations

import email
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import parseaddr

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from digest.bootstrap import Services
from digest.models import BounceEvent, Delivery, SendingPause, Subscriber, utcnow
from digest.render import message_id as our_message_id
from digest.store import subscribers as subscriber_store
from digest.store import suppressions
from digest.tokens import TokenError

log = logging.getLogger(__name__)

SOFT_DAYS_TO_SUPPRESS = 3
SOFT_WINDOW = timedelta(days=7)
RATE_WINDOW = timedelta(hours=24)
COMPLAINT_WARN = 0.001  # Gmail's bulk-sender guidance: stay below 0.1 %...
COMPLAINT_PAUSE = 0.003  # ...and never reach 0.3 %.
# On a small list one complaint is already 0.3 %: a pause then needs a few complaints, so one
# person's click cannot stop everyone's digest (it still raises the warning).
COMPLAINT_PAUSE_MIN = 3
COMPLAINT_TYPES = ("abuse", "fraud", "virus")
DELIVERED_ACTIONS = ("delivered", "relayed", "expanded")
_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_OUR_ID_RE = re.compile(r"<edition-(\d+)\.sub-(\d+)\.([0-9a-f]{8})@([^>\s]+)>")
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


@dataclass(frozen=True)
class Applied:
    """What processing one event did: suppressed, recorded, replay, or unmatched."""

    event: ReportEvent
    outcome: str
    subscriber_id: int | None = None


@dataclass(frozen=True)
class RateCheck:
    complaints: int
    sent: int
    rate: float
    level: str  # ok | warn | pause


# ---------------------------------------------------------------- parsing (pure)


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
            if isinstance(payload, list) and payload:
                return payload[0]
        if kind == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            return HeaderParser(policy=compat32).parsestr(text.decode("utf-8", "replace"))
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
    kind = (message.get_param("report-type") or "").lower()
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


# ---------------------------------------------------------------- acting on events


def _subscriber_from_message_id(services: Services, session: Session, value: str | None):
    """(subscriber, edition id) named by our own Message-ID, only if its HMAC tag verifies."""
    found = _OUR_ID_RE.search(value or "")
    if not found:
        return None, None
    edition_id, subscriber_id = int(found.group(1)), int(found.group(2))
    expected = our_message_id(
        edition_id=edition_id,
        subscriber_id=subscriber_id,
        domain=found.group(4),
        secret=services.settings.secret(),
    )
    if expected != found.group(0):
        return None, None
    return session.get(Subscriber, subscriber_id), edition_id


def _subscriber_from_verp(services: Services, session: Session, envelope_to: str | None):
    """The subscriber of a token-addressed bounce (`bounces+<reply token>@…`), if signed."""
    local = (envelope_to or "").partition("@")[0]
    _, plus, token = local.partition("+")
    if not plus or not token:
        return None
    try:
        payload = services.tokens.loads("reply", token)
    except TokenError:
        return None
    subscriber_id = payload[0] if isinstance(payload, list) and payload else payload
    return session.get(Subscriber, subscriber_id) if isinstance(subscriber_id, int) else None


def _soft_days(session: Session, key: str, now: datetime) -> int:
    query = select(func.count(func.distinct(BounceEvent.day))).where(
        BounceEvent.email_hash == key,
        BounceEvent.kind == "soft",
        col(BounceEvent.received_at) > now - SOFT_WINDOW,
        col(BounceEvent.received_at) <= now,
    )
    return int(session.exec(query).one())


def apply_event(
    services: Services,
    event: ReportEvent,
    *,
    envelope_to: str | None = None,
    now: datetime | None = None,
) -> Applied:
    """Record one event (once) and suppress the address when the rules say so."""
    now = now or utcnow()
    with Session(services.engine) as session:
        if session.exec(select(BounceEvent.id).where(BounceEvent.event_key == event.key)).first():
            return Applied(event, "replay")
        subscriber, edition_id = _subscriber_from_message_id(
            services, session, event.original_message_id
        )
        if subscriber is None:
            subscriber = _subscriber_from_verp(services, session, envelope_to)
        if subscriber is None and event.recipient:
            subscriber = subscriber_store.get_by_email(session, event.recipient)
        address = subscriber.email if subscriber is not None else event.recipient
        if not address:
            return Applied(event, "unmatched")
        key = suppressions.email_hash(address)
        session.add(
            BounceEvent(
                event_key=event.key,
                kind=event.kind,
                status=event.status,
                email_hash=key,
                edition_id=edition_id,
                received_at=now,
                day=now.date(),
            )
        )
        try:
            session.flush()
        except IntegrityError:
            session.rollback()  # the same report processed concurrently: that one counts
            return Applied(event, "replay")
        outcome = "recorded"
        if event.kind in ("hard", "complaint"):
            suppressions.suppress(
                session, address, "hard_bounce" if event.kind == "hard" else "complaint", now=now
            )
            outcome = "suppressed"
        elif event.kind == "soft" and _soft_days(session, key, now) >= SOFT_DAYS_TO_SUPPRESS:
            suppressions.suppress(session, address, "soft_bounce", now=now)
            outcome = "suppressed"
        subscriber_id = subscriber.id if subscriber is not None else None
        session.commit()
    log.info("bounce.event kind=%s status=%s outcome=%s", event.kind, event.status, outcome)
    return Applied(event, outcome, subscriber_id)


def process_report(
    services: Services,
    raw: bytes,
    *,
    envelope_to: str | None = None,
    now: datetime | None = None,
) -> list[Applied]:
    """Parse a report and apply each of its events; complaints re-check the complaint rate."""
    now = now or utcnow()
    applied = [
        apply_event(services, e, envelope_to=envelope_to, now=now) for e in parse_report(raw)
    ]
    if any(a.event.kind == "complaint" and a.outcome != "replay" for a in applied):
        check_complaint_rate(services, now=now)
    return applied


# ---------------------------------------------------------------- complaint rate and pause


def _last_resume(session: Session) -> datetime | None:
    return session.exec(select(func.max(SendingPause.resumed_at))).one()


def complaint_rate(session: Session, *, now: datetime) -> RateCheck:
    """Complaints ÷ messages sent over the last 24 h.

    Complaints received before the operator's last `resume-sending` are not counted again, so
    a resume is not undone by the very complaints that caused the pause.
    """
    since = now - RATE_WINDOW
    start = max(since, _last_resume(session) or since)
    complaints = session.exec(
        select(func.count()).where(
            BounceEvent.kind == "complaint",
            col(BounceEvent.received_at) > start,
            col(BounceEvent.received_at) <= now,
        )
    ).one()
    sent = session.exec(
        select(func.count()).where(col(Delivery.sent_at) > since, col(Delivery.sent_at) <= now)
    ).one()
    rate = complaints / sent if sent else (1.0 if complaints else 0.0)
    if rate >= COMPLAINT_PAUSE and complaints >= COMPLAINT_PAUSE_MIN:
        level = "pause"
    else:
        level = "warn" if rate >= COMPLAINT_WARN else "ok"
    return RateCheck(int(complaints), int(sent), rate, level)


def check_complaint_rate(services: Services, *, now: datetime | None = None) -> RateCheck:
    """Warn at ≥ 0.1 %; at ≥ 0.3 % with 3+ complaints pause sending until `resume-sending`."""
    now = now or utcnow()
    with Session(services.engine) as session:
        check = complaint_rate(session, now=now)
        summary = f"{check.rate:.3%} ({check.complaints} complaints / {check.sent} sent, 24 h)"
        if check.level == "pause":
            if not sending_paused(session):
                session.add(SendingPause(reason=f"complaint rate {summary}", paused_at=now))
                session.commit()
            log.error(
                "ALERT complaint_rate.pause %s: sending paused; `digest resume-sending`", summary
            )
        elif check.level == "warn":
            log.warning("ALERT complaint_rate.warn %s", summary)
    return check


def sending_paused(session: Session) -> bool:
    """True while a pause is open; editions must send nothing then."""
    query = select(SendingPause.id).where(col(SendingPause.resumed_at).is_(None))
    return session.exec(query).first() is not None


def pause_reason(session: Session) -> str | None:
    row = session.exec(select(SendingPause).where(col(SendingPause.resumed_at).is_(None))).first()
    return row.reason if row else None


def resume_sending(session: Session, *, now: datetime | None = None) -> int:
    """Close every open pause; returns how many were open. The caller commits."""
    now = now or utcnow()
    rows = session.exec(select(SendingPause).where(col(SendingPause.resumed_at).is_(None))).all()
    for row in rows:
        row.resumed_at = now
        session.add(row)
    return len(rows)
