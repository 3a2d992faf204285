"""Rate limits for what strangers can trigger: subscribe requests, confirmation mails, help
replies. Each check runs in a transaction of its own, so a refusal leaves nothing behind."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from digest.store import rate_limits
from digest.store.rate_limits import Verdict

if TYPE_CHECKING:
    from digest.bootstrap import Services

__all__ = ["Verdict", "count", "hit", "purge_expired"]


def hit(
    services: Services,
    key: str,
    limits: Sequence[tuple[int, float]],
    *,
    now: datetime | None = None,
) -> Verdict:
    """Record one hit under `key` if every (count, window_s) limit has room."""
    with services.reading() as tx:
        return rate_limits.sliding_hit(tx, key, limits, now=now)


def count(services: Services, key: str, limit: int, *, expires_at: datetime) -> bool:
    """Count one under the fixed-window counter `key` if it is below `limit`."""
    with services.reading() as tx:
        return rate_limits.counter_hit(tx, key, limit, expires_at=expires_at)


def purge_expired(services: Services, *, now: datetime | None = None) -> int:
    """Drop the limits whose windows have all passed; how many."""
    with services.reading() as tx:
        return rate_limits.purge_expired(tx, now=now)
