"""Subscription and feedback by email: `digest inbound` (aiosmtpd) or one message on stdin.

Who a message is about is decided by a signed token, never by its From header:

- a reply to a digest goes to `reply+<token>@<reply_to_domain>` (its Reply-To); the token names
  the subscriber, so `unsubscribe`, `pause`, `resume`, `interests: …`, `follow: NAME` and
  ratings (`+3 -5`, `like 3`, `dislike 4`, `more like 2`) act on that subscriber only. The mailto:
  List-Unsubscribe address is the same address with the subject `unsubscribe` (RFC 8058's
  fallback). The edition a rating refers to is the one our Message-ID in In-Reply-To names
  (HMAC-checked, same subscriber), else the subscriber's latest digest.
- without a token, `subscribe` starts a double opt-in whose confirmation goes to the sender's
  address, so a forged From gains nothing; everything else gets the help text, at most one an
  hour per address (the From may be a victim's).
- delivery reports and complaints (multipart/report, or anything sent to the bounce address)
  go to digest.usecases.bounces.

Auto-submitted mail (out-of-office replies, RFC 3834) is never acted on and never answered.
"""

from __future__ import annotations

import asyncio
import email
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

from digest.addresses import normalise_address
from digest.mail_commands import Commands, body_text, is_auto_submitted, parse_commands, reply_token
from digest.render import build_message
from digest.render import message_id as our_message_id
from digest.store import outcomes, suppressions
from digest.store.papers import papers_by_keys
from digest.texts import unicode_text
from digest.tokens import TokenError
from digest.usecases import bounces, following, leaving, limits, preferences, ratings, subscriptions

if TYPE_CHECKING:
    from digest.bootstrap import Services
    from digest.models import Subscriber

log = logging.getLogger(__name__)

HELP_TEMPLATE = "email/inbound_help.txt"
DONE_TEMPLATE = "email/inbound_done.txt"
HELP_INTERVAL_S = 3600.0
_OUR_ID = re.compile(r"<edition-(\d+)\.sub-(\d+)\.[0-9a-f]{8}@[^>\s]+>")


@dataclass
class InboundResult:
    """What handling one message did, and the mails to send back (already built)."""

    action: str
    detail: str = ""
    replies: list[subscriptions.OutgoingMail] = field(default_factory=list)


# ---------------------------------------------------------------- handling


def _is_bounce_address(services: Services, rcpt: str) -> bool:
    want_local, _, want_domain = services.settings.inbound.bounce_address.lower().rpartition("@")
    local, _, domain = rcpt.strip().strip("<>").lower().rpartition("@")
    return domain == want_domain and local.partition("+")[0] == want_local


def is_ours(services: Services, address: str) -> bool:
    """Whether mail to `address` is for us: the inbound address, bounces, or a reply token."""
    settings = services.settings
    address = address.strip("<>")
    if address.lower() == settings.inbound.address.lower():
        return True
    return _is_bounce_address(services, address) or (
        reply_token([address], settings.email.reply_to_domain) is not None
    )


def process_message(
    services: Services,
    raw: bytes,
    *,
    mail_from: str | None,
    rcpt_tos: list[str],
    peer: str = "stdin",
    now: datetime | None = None,
) -> InboundResult:
    """Act on one received message; the caller sends `replies` (see `send_replies`)."""
    now = now or services.clock()
    message = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    bounce_rcpt = next((r for r in rcpt_tos if _is_bounce_address(services, r)), None)
    if bounce_rcpt is not None or message.get_content_type() == "multipart/report":
        applied = bounces.process_report(services, raw, envelope_to=bounce_rcpt, now=now)
        detail = ",".join(f"{a.event.kind}:{a.outcome}" for a in applied) or "not a report"
        return InboundResult("report", detail)
    if is_auto_submitted(message, mail_from):
        return InboundResult("ignored", "auto-submitted")
    commands = parse_commands(str(message.get("Subject", "")), body_text(message))
    token = reply_token(rcpt_tos, services.settings.email.reply_to_domain)
    if token is not None:
        return _with_token(services, message, token, commands, now)
    return _without_token(services, message, mail_from, commands, peer, now)


def _subscriber_of(services: Services, token: str) -> tuple[int | None, int | None]:
    try:
        payload = services.tokens.loads("reply", token)
    except TokenError:
        return None, None
    # [subscriber, edition] in newer digests, the bare subscriber id in older ones.
    if isinstance(payload, list) and len(payload) == 2 and all(isinstance(p, int) for p in payload):
        return payload[0], payload[1]
    if isinstance(payload, int) and not isinstance(payload, bool):
        return payload, None
    return None, None


def _edition_from_headers(services: Services, message: EmailMessage, subscriber_id: int):
    """The edition our Message-ID in In-Reply-To/References names, if genuine and theirs."""
    refs = f"{message.get('In-Reply-To', '')} {message.get('References', '')}"
    for found in _OUR_ID.finditer(refs):
        edition_id, sid = int(found.group(1)), int(found.group(2))
        domain = found.group(0).rpartition("@")[2].rstrip(">")
        genuine = our_message_id(
            edition_id=edition_id,
            subscriber_id=sid,
            domain=domain,
            secret=services.settings.secret(),
        )
        if genuine == found.group(0) and sid == subscriber_id:
            return edition_id
    return None


def _with_token(
    services: Services, message: EmailMessage, token: str, commands: Commands, now: datetime
) -> InboundResult:
    subscriber_id, edition_id = _subscriber_of(services, token)
    if subscriber_id is None:
        log.info("inbound.invalid_token token=%s…", token[:6])
        return InboundResult("rejected", "invalid token")
    subscriber = preferences.get_subscriber(services, subscriber_id)
    if subscriber is None:
        return InboundResult("rejected", "unknown subscriber")
    done: list[str] = []
    if "unsubscribe" in commands.words:
        # Nothing else in the message matters once the person has asked to leave.
        leaving.unsubscribe(services, subscriber_id, now=now)
        ack = _done_mail(services, subscriber.email, now, ["unsubscribed"])
        return InboundResult("unsubscribed", f"subscriber={subscriber_id}", [ack])
    if commands.interests is not None:
        preferences.update_preferences(
            services, subscriber_id, _preferences(subscriber, commands.interests)
        )
        done.append("interests")
    followed: list[str] = []
    if commands.follow:
        followed = following.follow(services, subscriber_id, commands.follow)
        done.append("follow")
    for word in commands.words:
        if word in ("pause", "resume"):
            leaving.set_paused(services, subscriber_id, word == "pause")
            done.append(word)
    rated: list[str] = []
    if commands.ratings:
        action, rated = _rate(services, message, subscriber_id, edition_id, commands)
        done.append(action)
    replies = []
    if done:
        replies.append(_done_mail(services, subscriber.email, now, list(done), rated, followed))
    if "help" in commands.words or commands.empty:
        replies.append(_help_mail(services, subscriber.email, now, "token"))
        done.append("help")
    return InboundResult(",".join(done) or "nothing", f"subscriber={subscriber_id}", replies)


def _preferences(subscriber: Subscriber, interests: str) -> preferences.Preferences:
    return preferences.Preferences(
        interests=interests,
        categories=tuple(subscriber.categories),
        seed_papers=tuple(subscriber.seed_papers),
        timezone=subscriber.timezone,
        delivery_hour=subscriber.delivery_hour,
        frequency=subscriber.frequency,
        weekly_day=subscriber.weekly_day,
        trending_weight=subscriber.trending_weight,
        nothing_new_note=subscriber.nothing_new_note,
        authors=tuple(subscriber.authors),
        muted=tuple(subscriber.muted),
        papers_per_digest=subscriber.papers_per_digest,
    )


def _rate(
    services: Services,
    message: EmailMessage,
    subscriber_id: int,
    edition_id: int | None,
    commands: Commands,
) -> tuple[str, list[str]]:
    """Record the ratings; returns the action and one line per rated paper for the reply."""
    edition_id = edition_id or _edition_from_headers(services, message, subscriber_id)
    with services.reading() as tx:
        # The digest being answered: its papers in the order it showed them.
        edition_id, keys = outcomes.latest_sent(tx, subscriber_id, edition_id)
        titles = {k: unicode_text(p.title) for k, p in papers_by_keys(tx, keys).items()}
    rated = 0
    lines: list[str] = []
    for kind, number in commands.ratings:
        if not 1 <= number <= len(keys):
            continue  # a number the digest did not show
        key = keys[number - 1]
        if kind == "more":
            ratings.more_like_this(services, subscriber_id, key)
            ratings.rate(services, subscriber_id, key, 1, edition_id=edition_id)
        else:
            value = 1 if kind == "up" else -1
            ratings.rate(services, subscriber_id, key, value, edition_id=edition_id)
        rated += 1
        mark = {"up": "👍", "down": "👎", "more": "👍 more like this:"}[kind]
        lines.append(f"{mark} {number}. {titles.get(key, key)}")
    return f"rated:{rated}", lines


def _sender_address(message: EmailMessage, mail_from: str | None) -> str | None:
    """The From address (else the envelope sender), validated; ASCII only."""
    candidates = [a for _, a in getaddresses([str(message.get("From", ""))])] + [mail_from or ""]
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return normalise_address(candidate)
        except ValueError:
            continue
    return None


def _without_token(
    services: Services,
    message: EmailMessage,
    mail_from: str | None,
    commands: Commands,
    peer: str,
    now: datetime,
) -> InboundResult:
    sender = _sender_address(message, mail_from)
    if sender is None:
        return InboundResult("ignored", "no valid sender")
    if "subscribe" in commands.words:
        request = subscriptions.SubscribeRequest(
            sender, preferences.Preferences(interests=commands.interests or "")
        )
        meta = subscriptions.RequestMeta(
            ip_hash=subscriptions.keyed_hash(services, "ip", f"smtp:{peer}"),
            ua_hash=subscriptions.keyed_hash(services, "ua", "email"),
        )
        mail = subscriptions.request_subscription(services, request, meta, now=now)
        # The same answer whether or not a confirmation went out: it goes to the sender only.
        return InboundResult(
            "subscribe", "confirmation" if mail else "none", [mail] if mail else []
        )
    # Everything else without a token gets the help text, rate-limited: the From is unproven.
    key = "inbound-help:" + suppressions.email_hash(sender)
    verdict = limits.hit(services, key, [(1, HELP_INTERVAL_S)], now=now)
    if not verdict.allowed:
        return InboundResult("help", "rate-limited")
    return InboundResult("help", "sent", [_help_mail(services, sender, now, "no-token")])


def _help_mail(
    services: Services, to: str, now: datetime, reason: str
) -> subscriptions.OutgoingMail:
    return _auto_reply(services, to, now, HELP_TEMPLATE, reason=reason)


def _done_mail(
    services: Services,
    to: str,
    now: datetime,
    actions: list[str],
    rated: list[str] = (),
    followed: list[str] = (),
) -> subscriptions.OutgoingMail:
    """The acknowledgement of commands that changed a subscription (token-verified only);
    ratings are named paper by paper."""
    return _auto_reply(
        services,
        to,
        now,
        DONE_TEMPLATE,
        actions=actions,
        rated=list(rated),
        followed=list(followed),
        unsubscribed="unsubscribed" in actions,
    )


def _auto_reply(
    services: Services, to: str, now: datetime, template: str, **context: Any
) -> subscriptions.OutgoingMail:
    settings = services.settings
    rendered = services.templates.get_template(template).render(
        address=settings.inbound.address,
        postal_address=settings.email.postal_address,
        **context,
    )
    # The template's first line is the subject, so all the wording lives in templates/.
    subject, _, text = rendered.partition("\n")
    raw = build_message(
        sender=settings.email.from_address,
        to=to,
        subject=subject.removeprefix("Subject:").strip(),
        text=text.lstrip("\n"),
        html=None,
        message_id=f"<reply-{secrets.token_hex(12)}@{settings.email.message_id_domain}>",
        date=now,
        headers={"Auto-Submitted": "auto-replied"},
    )
    return subscriptions.OutgoingMail(to, services.dkim.sign(raw) if services.dkim else raw)


def send_replies(services: Services, result: InboundResult) -> None:
    for mail in result.replies:
        outcome = asyncio.run(subscriptions.send_mail(services, mail))
        log.info("inbound.reply outcome=%s code=%s", outcome.kind, outcome.code)


def handle(
    services: Services,
    raw: bytes,
    *,
    mail_from: str | None,
    rcpt_tos: list[str],
    peer: str = "stdin",
) -> InboundResult:
    """Process one message and send its replies (blocking; run it off the event loop)."""
    result = process_message(services, raw, mail_from=mail_from, rcpt_tos=rcpt_tos, peer=peer)
    log.info("inbound.message action=%s detail=%s", result.action, result.detail)
    send_replies(services, result)
    return result


__all__ = [
    "Commands",
    "InboundResult",
    "handle",
    "is_ours",
    "parse_commands",
    "process_message",
]
