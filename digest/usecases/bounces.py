"""Bounces and complaints: record each event a report states (digest.delivery_reports), act.

- hard bounce or complaint: one is enough to suppress the address.
- soft bounce: suppressed only after soft bounces on 3 distinct days within 7; a day counts
  once however many arrive.
- delivered: recorded and otherwise ignored; it never undoes a suppression (state only moves
  towards suppressed).
- complaints also re-check the complaint rate, which warns and then pauses all sending until an
  operator runs `resume-sending`.

The original message is found by our own Message-ID (`<edition-E.sub-S.tag@…>`, verified by
its HMAC tag), by a signed token in a VERP bounce address, or else by the reported address.
A replayed report (same event key) adds no row and changes nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from digest.delivery_reports import ReportEvent, classify_status, parse_report
from digest.render import message_id as our_message_id
from digest.store import bounce_events, outcomes, sending_pauses, suppressions
from digest.store import subscribers as subscriber_store

# Where callers (editions, the CLI, tests) have always found the pause: the store keeps it now.
from digest.store.sending_pauses import pause_reason, resume_sending, sending_paused
from digest.tokens import TokenError

if TYPE_CHECKING:
    from digest.bootstrap import Services
    from digest.models import Subscriber
    from digest.store.uow import Tx

log = logging.getLogger(__name__)

SOFT_DAYS_TO_SUPPRESS = 3
SOFT_WINDOW = timedelta(days=7)
RATE_WINDOW = timedelta(hours=24)
COMPLAINT_WARN = 0.001  # Gmail's bulk-sender guidance: stay below 0.1 %...
COMPLAINT_PAUSE = 0.003  # ...and never reach 0.3 %.
# On a small list one complaint is already 0.3 %: a pause then needs a few complaints, so one
# person's click cannot stop everyone's digest (it still raises the warning).
COMPLAINT_PAUSE_MIN = 3
_OUR_ID_RE = re.compile(r"<edition-(\d+)\.sub-(\d+)\.([0-9a-f]{8})@([^>\s]+)>")

__all__ = [
    "Applied",
    "RateCheck",
    "ReportEvent",
    "apply_event",
    "check_complaint_rate",
    "classify_status",
    "complaint_rate",
    "parse_report",
    "pause_reason",
    "process_report",
    "resume_sending",
    "sending_paused",
]


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


# ---------------------------------------------------------------- acting on events


def _subscriber_from_message_id(
    services: Services, tx: Tx, value: str | None
) -> tuple[Subscriber | None, int | None]:
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
    return subscriber_store.get(tx, subscriber_id), edition_id


def _subscriber_from_verp(services: Services, tx: Tx, envelope_to: str | None):
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
    return subscriber_store.get(tx, subscriber_id) if isinstance(subscriber_id, int) else None


def apply_event(
    services: Services,
    event: ReportEvent,
    *,
    envelope_to: str | None = None,
    now: datetime | None = None,
) -> Applied:
    """Record one event (once) and suppress the address when the rules say so."""
    now = now or services.clock()
    with services.transaction() as tx:
        if bounce_events.seen(tx, event.key):
            return Applied(event, "replay")
        subscriber, edition_id = _subscriber_from_message_id(
            services, tx, event.original_message_id
        )
        if subscriber is None:
            subscriber = _subscriber_from_verp(services, tx, envelope_to)
        if subscriber is None and event.recipient:
            subscriber = subscriber_store.get_by_email(tx, event.recipient)
        address = subscriber.email if subscriber is not None else event.recipient
        if not address:
            return Applied(event, "unmatched")
        key = suppressions.email_hash(address)
        recorded = bounce_events.add(
            tx,
            event_key=event.key,
            kind=event.kind,
            status=event.status,
            email_hash=key,
            edition_id=edition_id,
            now=now,
        )
        if not recorded:
            return Applied(event, "replay")
        outcome = "recorded"
        if event.kind in ("hard", "complaint"):
            why = "hard_bounce" if event.kind == "hard" else "complaint"
            suppressions.suppress(tx, address, why, now=now)
            outcome = "suppressed"
        elif event.kind == "soft":
            days = bounce_events.soft_days(tx, key, since=now - SOFT_WINDOW, until=now)
            if days >= SOFT_DAYS_TO_SUPPRESS:
                suppressions.suppress(tx, address, "soft_bounce", now=now)
                outcome = "suppressed"
        subscriber_id = subscriber.id if subscriber is not None else None
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
    now = now or services.clock()
    applied = [
        apply_event(services, e, envelope_to=envelope_to, now=now) for e in parse_report(raw)
    ]
    if any(a.event.kind == "complaint" and a.outcome != "replay" for a in applied):
        check_complaint_rate(services, now=now)
    return applied


# ---------------------------------------------------------------- complaint rate and pause


def complaint_rate(tx: Tx, *, now: datetime) -> RateCheck:
    """Complaints ÷ messages sent over the last 24 h.

    Complaints received before the operator's last `resume-sending` are not counted again, so
    a resume is not undone by the very complaints that caused the pause.
    """
    since = now - RATE_WINDOW
    start = max(since, sending_pauses.last_resume(tx) or since)
    complaints = bounce_events.complaints(tx, since=start, until=now)
    sent = outcomes.sent_count(tx, since=since, until=now)
    rate = complaints / sent if sent else (1.0 if complaints else 0.0)
    if rate >= COMPLAINT_PAUSE and complaints >= COMPLAINT_PAUSE_MIN:
        level = "pause"
    else:
        level = "warn" if rate >= COMPLAINT_WARN else "ok"
    return RateCheck(complaints, sent, rate, level)


def check_complaint_rate(services: Services, *, now: datetime | None = None) -> RateCheck:
    """Warn at ≥ 0.1 %; at ≥ 0.3 % with 3+ complaints pause sending until `resume-sending`."""
    now = now or services.clock()
    with services.transaction() as tx:
        check = complaint_rate(tx, now=now)
        summary = f"{check.rate:.3%} ({check.complaints} complaints / {check.sent} sent, 24 h)"
        if check.level == "pause":
            if not sending_paused(tx):
                sending_pauses.pause(tx, f"complaint rate {summary}", now=now)
            log.error(
                "ALERT complaint_rate.pause %s: sending paused; `digest resume-sending`", summary
            )
        elif check.level == "warn":
            log.warning("ALERT complaint_rate.warn %s", summary)
    return check
