"""Use cases of a subscriber's life: subscribe (double opt-in), confirm, tune, rate, pause, leave.

The web routes call these; none of them knows about HTTP. Subscribing is split in two: the
request itself only validates and queues (`request_subscription` runs after the response, in a
worker), so the page and its timing are the same whatever state the address is in.
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
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from digest.bootstrap import Services
from digest.mailer import SendOutcome
from digest.models import Consent, Feedback, Paper, Subscriber, utcnow
from digest.render import build_message
from digest.store import subscribers as subscriber_store
from digest.store import suppressions
from digest.store import web as web_store
from digest.texts import unicode_text

log = logging.getLogger(__name__)

# Suppressions the person caused themselves; a new confirmed opt-in lifts them. Bounces and
# complaints are never lifted by the website.
CONSENT_TEMPLATE = "web/_consent.html"
# Expired rate-limit rows are swept by about one subscribe request in a hundred.
PURGE_CHANCE = 0.01


@dataclass(frozen=True)
class Preferences:
    """Everything the subscribe and manage forms edit, already validated."""

    interests: str = ""
    categories: tuple[str, ...] = ()
    seed_papers: tuple[str, ...] = ()
    timezone: str = "UTC"
    delivery_hour: int = 7
    frequency: str = "daily"
    weekly_day: int = 0
    trending_weight: float | None = None
    # A short "nothing new today" note on days with nothing new, instead of no mail.
    nothing_new_note: bool = False
    authors: tuple[str, ...] = ()  # followed authors: their papers come first
    muted: tuple[str, ...] = ()  # words or arXiv categories whose papers never appear
    papers_per_digest: int | None = None  # 5-30; None: the service's default


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


def _apply(subscriber: Subscriber, prefs: Preferences) -> None:
    subscriber.interests = prefs.interests
    subscriber.categories = list(prefs.categories)
    subscriber.seed_papers = list(prefs.seed_papers)
    subscriber.timezone = prefs.timezone
    subscriber.delivery_hour = prefs.delivery_hour
    subscriber.frequency = prefs.frequency
    subscriber.weekly_day = prefs.weekly_day
    subscriber.trending_weight = prefs.trending_weight
    subscriber.nothing_new_note = prefs.nothing_new_note
    subscriber.authors = list(prefs.authors)
    subscriber.muted = list(prefs.muted)
    subscriber.papers_per_digest = prefs.papers_per_digest


def _may_send_confirmation(services: Services, email: str, now: datetime) -> bool:
    """Per-address limit first (a bombed victim cannot drain the budget), then the global one."""
    web = services.settings.web
    address_key = "addr:" + suppressions.email_hash(email)
    limits = [(1, web.address_interval_s), (web.address_daily_limit, 86_400.0)]
    if not web_store.sliding_hit(services.engine, address_key, limits, now=now).allowed:
        log.info("confirmation.address_limited")
        return False
    hour = now.strftime("%Y%m%d%H")
    expires = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    if not web_store.counter_hit(
        services.engine, f"global:confirm:{hour}", web.confirmations_per_hour, expires_at=expires
    ):
        # Logged at error level: this is the alert an operator must see (W3). Once per hour
        # across all processes, so an attack does not also flood the logs.
        if web_store.counter_hit(services.engine, f"alert:confirm:{hour}", 1, expires_at=expires):
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
    with Session(services.engine) as session:
        if _request_kind(session, email) is None:
            return None
    if not _may_send_confirmation(services, email, now):
        return None
    with Session(services.engine, expire_on_commit=False) as session:
        kind = _request_kind(session, email)  # the state may have changed meanwhile
        if kind is None:
            return None
        subscriber = subscriber_store.get_by_email(session, email)
        if kind == "already" and subscriber is not None:
            return already_subscribed_mail(
                services, email=email, subscriber_id=subscriber.id, now=now
            )
        if subscriber is None:
            subscriber = Subscriber(email=email, status="pending", created_at=now)
        subscriber.status = "pending"
        _apply(subscriber, request.preferences)
        session.add(subscriber)
        try:
            session.flush()
        except IntegrityError:
            # A concurrent request inserted the same address first; its mail covers this one.
            session.rollback()
            return None
        nonce = secrets.token_urlsafe(24)
        session.add(
            Consent(
                subscriber_id=subscriber.id,
                nonce=nonce,
                form_version=services.settings.web.form_version,
                text_hash=consent_text_hash(services),
                ip_hash=meta.ip_hash,
                ua_hash=meta.ua_hash,
                requested_at=now,
            )
        )
        session.commit()
        subscriber_id = subscriber.id
    return confirmation_mail(
        services, email=email, subscriber_id=subscriber_id, nonce=nonce, now=now
    )


def _request_kind(session: Session, email: str) -> str | None:
    """What a subscribe request for this address gets: "confirm", "already" or None."""
    reason = suppressions.reason(session, email)
    if reason is not None and reason not in suppressions.SELF_REASONS:
        return None
    subscriber = subscriber_store.get_by_email(session, email)
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
            web_store.purge_expired(services.engine)
        mail = request_subscription(services, request, meta)
        if mail is not None:
            outcome = asyncio.run(send_mail(services, mail))
            log.info("confirmation.sent outcome=%s code=%s", outcome.kind, outcome.code)
    except Exception:
        log.exception("confirmation.failed")


def check_confirmation(services: Services, subscriber_id: int, nonce: str) -> ConfirmResult | None:
    """What pressing the confirm button would do (None: it would confirm). Reads only."""
    with Session(services.engine) as session:
        consent = web_store.consent_by_nonce(session, nonce)
        if consent is None or consent.subscriber_id != subscriber_id:
            return ConfirmResult.UNKNOWN
        subscriber = session.get(Subscriber, subscriber_id)
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
    with Session(services.engine, expire_on_commit=False) as session:
        consent = web_store.consent_by_nonce(session, nonce)
        subscriber = session.get(Subscriber, subscriber_id)
        if consent is None or subscriber is None or consent.subscriber_id != subscriber_id:
            return ConfirmResult.UNKNOWN
        if consent.confirmed_at is not None or subscriber.status != "pending":
            return ConfirmResult.ALREADY
        consent.confirmed_at = now
        subscriber.status = "active"
        subscriber.confirmed_at = now
        subscriber.unsubscribed_at = None
        suppressions.lift(session, subscriber.email)
        session.add(consent)
        session.add(subscriber)
        session.commit()
        return ConfirmResult.CONFIRMED


def get_subscriber(services: Services, subscriber_id: int) -> Subscriber | None:
    with Session(services.engine, expire_on_commit=False) as session:
        return session.get(Subscriber, subscriber_id)


def unsubscribe(services: Services, subscriber_id: int, *, now: datetime | None = None) -> bool:
    """Stop all mail to this subscriber at once; idempotent. False if they no longer exist."""
    now = now or utcnow()
    with Session(services.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return False
        if subscriber.status != "unsubscribed":
            if subscriber.status != "suppressed":
                subscriber.status = "unsubscribed"
            subscriber.unsubscribed_at = now
            session.add(subscriber)
            suppressions.suppress(session, subscriber.email, "unsubscribed", now=now)
            session.commit()
        return True


def update_preferences(services: Services, subscriber_id: int, prefs: Preferences) -> bool:
    with Session(services.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return False
        _apply(subscriber, prefs)
        session.add(subscriber)
        session.commit()
        return True


def set_paused(services: Services, subscriber_id: int, paused: bool) -> bool:
    """Pause or resume; only between active and paused (never revives an unsubscribed one)."""
    with Session(services.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return False
        if paused and subscriber.status == "active":
            subscriber.status = "paused"
        elif not paused and subscriber.status == "paused":
            subscriber.status = "active"
        session.add(subscriber)
        session.commit()
        return True


def export_data(services: Services, subscriber_id: int) -> dict[str, Any] | None:
    with Session(services.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return None
        return web_store.export_subscriber(session, subscriber)


def erase(services: Services, subscriber_id: int, *, now: datetime | None = None) -> bool:
    """Delete every personal row; a hashed suppression entry is all that remains."""
    with Session(services.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return False
        web_store.erase_subscriber(session, subscriber, now=now)
        session.commit()
        return True


def rate(
    services: Services,
    subscriber_id: int,
    paper_key: str,
    value: int,
    *,
    edition_id: int | None = None,
) -> bool:
    """Record 👍 (+1), 👎 (-1) or undo (0); idempotent. False if the subscriber is gone."""
    with Session(services.engine) as session:
        if session.get(Subscriber, subscriber_id) is None:
            return False
        subscriber_store.record_feedback(
            session,
            subscriber_id=subscriber_id,
            paper_key=paper_key,
            value=value,
            edition_id=edition_id or None,
        )
        session.commit()
        return True


def more_like_this(services: Services, subscriber_id: int, paper_key: str) -> bool:
    """Add the paper to the subscriber's seed papers, so similar ones rank higher."""
    with Session(services.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return False
        if paper_key not in subscriber.seed_papers:
            subscriber.seed_papers = [*subscriber.seed_papers, paper_key][-50:]
            session.add(subscriber)
            session.commit()
        return True


@dataclass(frozen=True)
class Rating:
    paper_key: str
    title: str
    url: str | None
    value: int


def ratings(services: Services, subscriber_id: int) -> list[Rating]:
    """The subscriber's current 👍/👎, newest first, with titles where the paper is stored."""
    with Session(services.engine) as session:
        rows = session.exec(
            select(Feedback)
            .where(Feedback.subscriber_id == subscriber_id, Feedback.value != 0)
            .order_by(col(Feedback.created_at).desc())
        ).all()
        keys = [r.paper_key for r in rows]
        papers = (
            {p.key: p for p in session.exec(select(Paper).where(col(Paper.key).in_(keys))).all()}
            if keys
            else {}
        )
        return [
            Rating(
                r.paper_key,
                unicode_text(papers[r.paper_key].title) if r.paper_key in papers else r.paper_key,
                papers[r.paper_key].url if r.paper_key in papers else None,
                r.value,
            )
            for r in rows
        ]
