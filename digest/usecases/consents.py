"""Activating a subscriber on a consent given at once (no confirmation mail), recorded alike.

Two paths do this: an operator confirming a pending address (`digest subscribers confirm`)
and a subscriber taking back their own unsubscribe from its signed link. Both leave the same
audit trail: a Consent row confirmed when requested, with the form and origin hashed as the
website's double opt-in records them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from digest.models import Subscriber
from digest.store import consents, suppressions
from digest.store.uow import Tx
from digest.usecases.subscriptions import consent_text_hash, keyed_hash

if TYPE_CHECKING:
    from digest.bootstrap import Services


def activate_with_consent(
    tx: Tx,
    services: Services,
    subscriber: Subscriber,
    *,
    form_version: str,
    origin: str,
    lift: Iterable[str],
    now: datetime,
) -> None:
    """Record the consent, make the subscriber active and lift the `lift` suppressions; the
    caller's transaction commits."""
    consents.record(
        tx,
        subscriber_id=subscriber.id,
        nonce=secrets.token_urlsafe(24),
        form_version=form_version,
        text_hash=consent_text_hash(services),
        ip_hash=keyed_hash(services, "ip", origin),
        ua_hash=keyed_hash(services, "ua", origin),
        requested_at=now,
        confirmed_at=now,
    )
    subscriber.status = "active"
    subscriber.unsubscribed_at = None
    suppressions.lift(tx, subscriber.email, tuple(lift))
