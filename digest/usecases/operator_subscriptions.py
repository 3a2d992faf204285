"""Subscribing people from the command line: double opt-in by mail, or an operator's confirmation.

`digest subscribers add EMAIL` without --confirmed records a pending subscriber and a consent
request (marked as coming from the operator, not from the web form) and mails the same
confirmation link the website sends. `digest subscribers confirm EMAIL` activates a pending
subscriber whose consent the operator gathered some other way, and records that it was so.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from digest.models import Subscriber, utcnow
from digest.store import consents, suppressions
from digest.store import subscribers as subscriber_store
from digest.usecases.consents import activate_with_consent
from digest.usecases.subscriptions import (
    OutgoingMail,
    confirmation_mail,
    consent_text_hash,
    keyed_hash,
)

if TYPE_CHECKING:
    from digest.bootstrap import Services
    from digest.store.uow import Tx

# Recorded as the consent's form version, so an audit can tell CLI requests from web ones.
OPERATOR_FORM = "operator-cli"


@dataclass(frozen=True)
class NewSubscriber:
    email: str
    interests: str = ""
    categories: tuple[str, ...] = ()
    seed_papers: tuple[str, ...] = ()
    timezone: str = "UTC"
    delivery_hour: int = 7
    authors: tuple[str, ...] = ()


def insert(
    tx: Tx, new: NewSubscriber, *, confirmed: bool, now: datetime | None = None
) -> Subscriber:
    """The subscriber row for `new`; raises SubscriberError when present or suppressed."""
    return subscriber_store.add_subscriber(
        tx,
        email=new.email,
        interests=new.interests,
        categories=new.categories,
        seed_papers=new.seed_papers,
        authors=new.authors,
        timezone=new.timezone,
        delivery_hour=new.delivery_hour,
        confirmed=confirmed,
        now=now,
    )


def add_pending(
    services: Services, new: NewSubscriber, *, now: datetime | None = None
) -> OutgoingMail:
    """Insert a pending subscriber with a consent request; return the confirmation mail to send.

    Raises SubscriberError when the address is on the list or suppressed.
    """
    now = now or utcnow()
    nonce = secrets.token_urlsafe(24)
    with services.transaction() as tx:
        subscriber = insert(tx, new, confirmed=False, now=now)
        consents.record(
            tx,
            subscriber_id=subscriber.id,
            nonce=nonce,
            form_version=OPERATOR_FORM,
            text_hash=consent_text_hash(services),
            ip_hash=keyed_hash(services, "ip", "cli"),
            ua_hash=keyed_hash(services, "ua", "cli"),
            requested_at=now,
        )
        subscriber_id, email = subscriber.id, subscriber.email
    assert subscriber_id is not None
    return confirmation_mail(
        services, email=email, subscriber_id=subscriber_id, nonce=nonce, now=now
    )


def confirm_by_operator(services: Services, email: str, *, now: datetime | None = None) -> str:
    """Activate a pending subscriber; returns what happened, in words. LookupError if unknown."""
    now = now or utcnow()
    with services.transaction() as tx:
        subscriber: Subscriber | None = subscriber_store.get_by_email(tx, email)
        if subscriber is None:
            raise LookupError(f"no subscriber {email!r}")
        if subscriber.status in ("active", "paused"):
            return f"{subscriber.email} is {subscriber.status} already"
        if subscriber.status != "pending":
            raise LookupError(
                f"{subscriber.email} is {subscriber.status}: only a pending subscriber can be "
                "confirmed (they can subscribe again on the website)"
            )
        subscriber.confirmed_at = now
        activate_with_consent(
            tx,
            services,
            subscriber,
            form_version=OPERATOR_FORM,
            origin="cli",
            lift=suppressions.SELF_REASONS,
            now=now,
        )
        return f"{subscriber.email} is active"
