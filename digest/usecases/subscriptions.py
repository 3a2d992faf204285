"""Subscribing with double opt-in: the request, its confirmation mail, and the confirmation.

The web form and the email command `subscribe` call these; none of them knows about HTTP.
Subscribing is split in two: the request itself only validates and queues
(`process_subscription` runs after the response, in a worker), so the page and its timing are
the same whatever state the address is in. Tuning, rating and leaving live in preferences.py,
ratings.py and leaving.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import random
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from digest.mailer import SendOutcome
from digest.models import Subscriber, utcnow
from digest.render import build_message
from digest.store import consents, suppressions
from digest.store import subscribers as subscriber_store
from digest.store.uow import Tx
from digest.usecases import limits
from digest.usecases.preferences import Preferences, apply_preferences

if TYPE_CHECKING:
    from digest.bootstrap import Services

log = logging.getLogger(__name__)

CONSENT_TEMPLATE = "web/_consent.html"
# Expired rate-limit rows are swept by about one subscribe request in a hundred.
PURGE_CHANCE = 0.01


@dataclass(frozen=True)
class SubscribeRequest:
    email: str
    preferences: Preferences = field(default_factory=Preferences)


@dataclass(frozen=True)
class RequestMeta:
    """Where a request came from, already hashed: we never store a raw IP or User-Agent."""

    ip_hash: str
    ua_hash: str


@dataclass(frozen=True)
class OutgoingMail:
    recipient: str
    raw: bytes


class ConfirmResult(Enum):
    CONFIRMED = "confirmed"
    ALREADY = "already"  # this link was used, or the address is confirmed already
    UNKNOWN = "unknown"  # the request behind the link no longer exists (erased, replaced)


def keyed_hash(services: Services, kind: str, value: str) -> str:
    """HMAC-SHA256 under the secret: stable for matching, not reversible by brute force."""
    key = f"{services.settings.secret()}:{kind}".encode()
    return hmac.new(key, value.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


def consent_text_hash(services: Services) -> str:
    """SHA-256 of the consent wording shown on the form, recorded with each consent."""
    source, _, _ = services.templates.loader.get_source(services.templates, CONSENT_TEMPLATE)
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _may_send_confirmation(services: Services, email: str, now: datetime) -> bool:
    """Per-address limit first (a bombed victim cannot drain the budget), then the global one."""
    web = services.settings.web
    address_key = "addr:" + suppressions.email_hash(email)
    per_address = [(1, web.address_interval_s), (web.address_daily_limit, 86_400.0)]
    if not limits.hit(services, address_key, per_address, now=now).allowed:
        log.info("confirmation.address_limited")
        return False
    hour = now.strftime("%Y%m%d%H")
    expires = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    if not limits.count(
        services, f"global:confirm:{hour}", web.confirmations_per_hour, expires_at=expires
    ):
        # Logged at error level: this is the alert an operator must see (W3). Once per hour
        # across all processes, so an attack does not also flood the logs.
        if limits.count(services, f"alert:confirm:{hour}", 1, expires_at=expires):
            log.error(
                "ALERT confirmation.budget_exhausted: more than %d confirmation mails this hour; "
                "refusing more (possible abuse of the subscribe form)",
                web.confirmations_per_hour,
            )
        return False
    return True


def _notice_mail(
    services: Services,
    *,
    email: str,
    template: str,
    context: dict[str, Any],
    message_id: str,
    now: datetime,
    fallback_subject: str,
) -> OutgoingMail:
    """A transactional mail from fixed templates: nothing the requester typed goes into it."""
    settings = services.settings
    context = {**context, "postal_address": settings.email.postal_address}
    body_html = services.templates.get_template(f"email/{template}.html").render(context)
    body_text = services.templates.get_template(f"email/{template}.txt").render(context)
    # The subject is the template's <title>, so its wording lives in templates/ too.
    found = re.search(r"<title>(.*?)</title>", body_html, re.S)
    subject = html.unescape(found.group(1)).strip() if found else fallback_subject
    raw = build_message(
        sender=settings.email.from_address,
        to=email,
        subject=subject,
        text=body_text,
        html=body_html,
        message_id=f"<{message_id}@{settings.email.message_id_domain}>",
        date=now,
        headers={"Auto-Submitted": "auto-generated"},
    )
    signer = getattr(services, "dkim", None)
    return OutgoingMail(email, signer.sign(raw) if signer else raw)


def confirmation_mail(
    services: Services, *, email: str, subscriber_id: int, nonce: str, now: datetime
) -> OutgoingMail:
    """The confirmation message: fixed text and the signed link."""
    token = services.tokens.dumps("confirm", [subscriber_id, nonce])
    url = f"{services.settings.web.base_url.rstrip('/')}/confirm/{token}"
    return _notice_mail(
        services,
        email=email,
        template="confirm",
        context={"confirm_url": url},
        message_id=f"confirm-{nonce}",
        now=now,
        fallback_subject="Confirm your subscription",
    )


def already_subscribed_mail(
    services: Services, *, email: str, subscriber_id: int, now: datetime
) -> OutgoingMail:
    """Sent instead of a confirmation when the address is subscribed already.

    The form answers every request the same way, so it does not tell a stranger who is
    subscribed; the owner of the address gets their preferences link instead.
    """
    token = services.tokens.dumps("manage", subscriber_id)
    url = f"{services.settings.web.base_url.rstrip('/')}/manage/{token}"
    return _notice_mail(
        services,
        email=email,
        template="already_subscribed",
        context={"manage_url": url},
        message_id=f"already-{secrets.token_urlsafe(12)}",
        now=now,
        fallback_subject="You are already subscribed",
    )


def request_subscription(
    services: Services, request: SubscribeRequest, meta: RequestMeta, *, now: datetime | None = None
) -> OutgoingMail | None:
    """Record a subscribe request and return the mail to send, if one is due.

    New, pending, unsubscribed and erased addresses get a pending row, a consent record and a
    confirmation (rate limits permitting). Active and paused subscribers are left untouched (a
    stranger must not be able to rewrite someone's interests) and get their preferences link
    instead, under the same limits. Bounced or complained addresses get nothing.
    """
    now = now or utcnow()
    email = request.email.strip().lower()
    # Read, then limit, then write, each with its own connection and never two at once: a
    # connection held across the limit check would let 20 racing requests drain the pool.
    with services.reading() as tx:
        if _request_kind(tx, email) is None:
            return None
    if not _may_send_confirmation(services, email, now):
        return None
    with services.transaction() as tx:
        kind = _request_kind(tx, email)  # the state may have changed meanwhile
        if kind is None:
            return None
        subscriber = subscriber_store.get_by_email(tx, email)
        if kind == "already" and subscriber is not None:
            return already_subscribed_mail(
                services, email=email, subscriber_id=subscriber.id, now=now
            )
        if subscriber is None:
            subscriber = Subscriber(email=email, status="pending", created_at=now)
        subscriber.status = "pending"
        apply_preferences(subscriber, request.preferences)
        if not subscriber_store.save(tx, subscriber):
            return None  # a concurrent request inserted the address first; its mail covers this
        nonce = secrets.token_urlsafe(24)
        consents.record(
            tx,
            subscriber_id=subscriber.id,
            nonce=nonce,
            form_version=services.settings.web.form_version,
            text_hash=consent_text_hash(services),
            ip_hash=meta.ip_hash,
            ua_hash=meta.ua_hash,
            requested_at=now,
        )
        subscriber_id = subscriber.id
    return confirmation_mail(
        services, email=email, subscriber_id=subscriber_id, nonce=nonce, now=now
    )


def _request_kind(tx: Tx, email: str) -> str | None:
    """What a subscribe request for this address gets: "confirm", "already" or None."""
    reason = suppressions.reason(tx, email)
    if reason is not None and reason not in suppressions.SELF_REASONS:
        return None
    subscriber = subscriber_store.get_by_email(tx, email)
    if subscriber is None:
        return "confirm"
    if subscriber.status in ("active", "paused"):
        return "already"
    return None if subscriber.status == "suppressed" else "confirm"


async def send_mail(services: Services, mail: OutgoingMail) -> SendOutcome:
    connection = services.smtp_connection()
    try:
        return await connection.send(
            sender=services.settings.email.from_address, recipient=mail.recipient, message=mail.raw
        )
    finally:
        await connection.close()


def process_subscription(services: Services, request: SubscribeRequest, meta: RequestMeta) -> None:
    """The background half of subscribing: record, then mail. Never raises (it has no caller)."""
    try:
        if random.random() < PURGE_CHANCE:
            limits.purge_expired(services)
        mail = request_subscription(services, request, meta)
        if mail is not None:
            outcome = asyncio.run(send_mail(services, mail))
            log.info("confirmation.sent outcome=%s code=%s", outcome.kind, outcome.code)
    except Exception:
        log.exception("confirmation.failed")


def check_confirmation(services: Services, subscriber_id: int, nonce: str) -> ConfirmResult | None:
    """What pressing the confirm button would do (None: it would confirm). Reads only."""
    with services.reading() as tx:
        consent = consents.by_nonce(tx, nonce)
        if consent is None or consent.subscriber_id != subscriber_id:
            return ConfirmResult.UNKNOWN
        subscriber = subscriber_store.get(tx, subscriber_id)
        if subscriber is None:
            return ConfirmResult.UNKNOWN
        if consent.confirmed_at is not None or subscriber.status != "pending":
            return ConfirmResult.ALREADY
        return None


def confirm(
    services: Services, subscriber_id: int, nonce: str, *, now: datetime | None = None
) -> ConfirmResult:
    """Activate a pending subscriber from the link of one of their consent requests."""
    now = now or utcnow()
    with services.transaction() as tx:
        consent = consents.by_nonce(tx, nonce)
        subscriber = subscriber_store.get(tx, subscriber_id)
        if consent is None or subscriber is None or consent.subscriber_id != subscriber_id:
            return ConfirmResult.UNKNOWN
        if consent.confirmed_at is not None or subscriber.status != "pending":
            return ConfirmResult.ALREADY
        consents.confirm(tx, consent, now=now)
        subscriber.status = "active"
        subscriber.confirmed_at = now
        subscriber.unsubscribed_at = None
        # A new confirmed opt-in lifts the person's own suppressions, never a bounce's.
        suppressions.lift(tx, subscriber.email)
        return ConfirmResult.CONFIRMED
