"""Pausing, resuming and leaving: a subscriber stops (or restarts) their mail themselves."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from digest.models import utcnow
from digest.store import subscribers as subscriber_store
from digest.store import suppressions

if TYPE_CHECKING:
    from digest.bootstrap import Services


def unsubscribe(services: Services, subscriber_id: int, *, now: datetime | None = None) -> bool:
    """Stop all mail to this subscriber at once; idempotent. False if they no longer exist."""
    now = now or utcnow()
    with services.transaction() as tx:
        subscriber = subscriber_store.get(tx, subscriber_id)
        if subscriber is None:
            return False
        if subscriber.status != "unsubscribed":
            if subscriber.status != "suppressed":
                subscriber.status = "unsubscribed"
            subscriber.unsubscribed_at = now
            suppressions.suppress(tx, subscriber.email, "unsubscribed", now=now)
        return True


def set_paused(services: Services, subscriber_id: int, paused: bool) -> bool:
    """Pause or resume; only between active and paused (never revives an unsubscribed one)."""
    with services.transaction() as tx:
        subscriber = subscriber_store.get(tx, subscriber_id)
        if subscriber is None:
            return False
        if paused and subscriber.status == "active":
            subscriber.status = "paused"
        elif not paused and subscriber.status == "paused":
            subscriber.status = "active"
        return True
