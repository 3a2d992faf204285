"""Rate limits, checked and counted atomically in the database.

Each function takes a transaction of its own (`services.reading()`) and ends it itself, one
short transaction per step: a request that is refused leaves nothing behind, a race is settled
by the database alone, and no connection is held while a verdict is computed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from digest.models import RateLimit, utcnow
from digest.store.uow import Tx

# Compare-and-swap attempts before a check gives up. Each failed attempt means another request
# won, so 20 concurrent requests need at most 20; giving up refuses (fails closed).
CAS_ATTEMPTS = 40


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a rate-limited action may go ahead, and if not, when it may next."""

    allowed: bool
    retry_after_s: float = 0.0


def _epoch(now: datetime) -> float:
    return now.timestamp()


def _sliding_verdict(hits: Sequence[float], limits: Sequence[tuple[int, float]], t: float):
    """(allowed, retry_after, kept hits): allowed when every (count, window) has room."""
    longest = max(w for _, w in limits)
    kept = sorted(h for h in hits if h > t - longest)
    retry = 0.0
    for count, window in limits:
        inside = [h for h in kept if h > t - window]
        if len(inside) >= count:
            # The oldest hit that must age out before there is room again.
            retry = max(retry, inside[-count] + window - t)
    return retry <= 0, retry, kept


def sliding_hit(
    tx: Tx, key: str, limits: Sequence[tuple[int, float]], *, now: datetime | None = None
) -> Verdict:
    """Record one hit under `key` if every (count, window_s) limit has room; atomically.

    The row is read, the verdict computed, and the new hit list written only if the row's
    version is still the one read (conditional UPDATE), or inserted if there was no row (the
    unique key makes a concurrent second INSERT fail). A loser re-reads and re-decides.
    """
    now = now or utcnow()
    t = _epoch(now)
    longest = max(w for _, w in limits)
    most = max(c for c, _ in limits)
    expires = now + timedelta(seconds=longest)
    for attempt in range(CAS_ATTEMPTS):
        try:
            row = (
                tx.connection()
                .execute(select(RateLimit.hits, RateLimit.version).where(RateLimit.key == key))
                .first()
            )
            tx.rollback()  # the read ends here: nothing is held while the verdict is computed
            hits, version = (row[0] or [], row[1]) if row else ([], None)
            allowed, retry, kept = _sliding_verdict(hits, limits, t)
            if not allowed:
                return Verdict(False, retry)
            new_hits = (kept + [t])[-most:]
            conn = tx.connection()
            if version is None:
                conn.execute(
                    insert(RateLimit).values(
                        key=key, hits=new_hits, count=0, version=1, expires_at=expires
                    )
                )
                tx.commit()
                return Verdict(True)
            result = conn.execute(
                update(RateLimit)
                .where(RateLimit.key == key, RateLimit.version == version)
                .values(hits=new_hits, version=version + 1, expires_at=expires)
            )
            tx.commit()
            if result.rowcount == 1:
                return Verdict(True)
        except (IntegrityError, OperationalError):
            # Lost the insert race, or SQLite reported a busy snapshot: read again.
            tx.rollback()
            time.sleep(0.001 * (attempt + 1))
    return Verdict(False, 1.0)


def counter_hit(tx: Tx, key: str, limit: int, *, expires_at: datetime) -> bool:
    """Increment the fixed-window counter `key` if it is below `limit`; atomically."""
    for attempt in range(CAS_ATTEMPTS):
        try:
            conn = tx.connection()
            result = conn.execute(
                update(RateLimit)
                .where(RateLimit.key == key, RateLimit.count < limit)
                .values(count=RateLimit.count + 1, version=RateLimit.version + 1)
            )
            if result.rowcount == 1:
                tx.commit()
                return True
            row = conn.execute(select(RateLimit.count).where(RateLimit.key == key)).first()
            if row is not None:
                tx.commit()
                if row[0] >= limit:
                    return False
                # The row appeared (committed by a racer) after our UPDATE looked: retry.
                continue
            conn.execute(
                insert(RateLimit).values(
                    key=key, hits=[], count=1, version=1, expires_at=expires_at
                )
            )
            tx.commit()
            return True
        except (IntegrityError, OperationalError):
            tx.rollback()
            time.sleep(0.001 * (attempt + 1))
    return False


def purge_expired(tx: Tx, *, now: datetime | None = None) -> int:
    """Drop rate-limit rows whose windows have all passed."""
    result = tx.connection().execute(
        delete(RateLimit).where(RateLimit.expires_at < (now or utcnow()))
    )
    tx.commit()
    return result.rowcount or 0
