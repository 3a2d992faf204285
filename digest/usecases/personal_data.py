"""A subscriber's data rights: a copy of everything stored about them, and its erasure."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from digest.store import personal_data
from digest.store import subscribers as subscriber_store

if TYPE_CHECKING:
    from digest.bootstrap import Services


def export_data(services: Services, subscriber_id: int) -> dict[str, Any] | None:
    with services.reading() as tx:
        subscriber = subscriber_store.get(tx, subscriber_id)
        if subscriber is None:
            return None
        return personal_data.export_subscriber(tx, subscriber)


def erase(services: Services, subscriber_id: int, *, now: datetime | None = None) -> bool:
    """Delete every personal row; a hashed suppression entry is all that remains."""
    with services.transaction() as tx:
        subscriber = subscriber_store.get(tx, subscriber_id)
        if subscriber is None:
            return False
        personal_data.erase_subscriber(tx, subscriber, now=now)
        return True
