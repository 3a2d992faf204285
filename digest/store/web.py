"""Queries behind the website: atomic rate limits, consent records, export and erasure.

Rate limits take the engine, not a session: each check is its own short transaction, so a
request that is refused leaves nothing behind and a race is settled by the database alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, SQLModel, col

from digest.models import (
    Consent,
    Delivery,
    Edition,
    Feedback,
    RateLimit,
    Subscriber,
    utcnow,
)
from digest.store import suppressions

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
    engine: Engine, key: str, limits: Sequence[tuple[int, float]], *, now: datetime | None = None
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
            with engine.connect() as conn:
                row = conn.execute(
                    select(RateLimit.hits, RateLimit.version).where(RateLimit.key == key)
                ).first()
            hits, version = (row[0] or [], row[1]) if row else ([], None)
            allowed, retry, kept = _sliding_verdict(hits, limits, t)
            if not allowed:
                return Verdict(False, retry)
            new_hits = (kept + [t])[-most:]
            with engine.begin() as conn:
                if version is None:
                    conn.execute(
                        insert(RateLimit).values(
                            key=key, hits=new_hits, count=0, version=1, expires_at=expires
                        )
                    )
                    return Verdict(True)
                result = conn.execute(
                    update(RateLimit)
                    .where(RateLimit.key == key, RateLimit.version == version)
                    .values(hits=new_hits, version=version + 1, expires_at=expires)
                )
                if result.rowcount == 1:
                    return Verdict(True)
        except (IntegrityError, OperationalError):
            # Lost the insert race, or SQLite reported a busy snapshot: read again.
            time.sleep(0.001 * (attempt + 1))
    return Verdict(False, 1.0)


def counter_hit(engine: Engine, key: str, limit: int, *, expires_at: datetime) -> bool:
    """Increment the fixed-window counter `key` if it is below `limit`; atomically."""
    for attempt in range(CAS_ATTEMPTS):
        try:
            with engine.begin() as conn:
                result = conn.execute(
                    update(RateLimit)
                    .where(RateLimit.key == key, RateLimit.count < limit)
                    .values(count=RateLimit.count + 1, version=RateLimit.version + 1)
                )
                if result.rowcount == 1:
                    return True
                row = conn.execute(select(RateLimit.count).where(RateLimit.key == key)).first()
                if row is not None:
                    if row[0] >= limit:
                        return False
                    # The row appeared (committed by a racer) after our UPDATE looked: retry.
                    continue
                conn.execute(
                    insert(RateLimit).values(
                        key=key, hits=[], count=1, version=1, expires_at=expires_at
                    )
                )
                return True
        except (IntegrityError, OperationalError):
            time.sleep(0.001 * (attempt + 1))
    return False


def purge_expired(engine: Engine, *, now: datetime | None = None) -> int:
    """Drop rate-limit rows whose windows have all passed."""
    with engine.begin() as conn:
        result = conn.execute(delete(RateLimit).where(RateLimit.expires_at < (now or utcnow())))
        return result.rowcount or 0


def consent_by_nonce(session: Session, nonce: str) -> Consent | None:
    return session.execute(select(Consent).where(Consent.nonce == nonce)).scalars().first()


def _iso(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def export_subscriber(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything stored about one subscriber, as JSON-ready data (GDPR Art. 15 and 20)."""
    profile = {name: _iso(getattr(subscriber, name)) for name in Subscriber.model_fields}
    ratings = session.execute(
        select(Feedback).where(Feedback.subscriber_id == subscriber.id).order_by(col(Feedback.id))
    ).scalars()
    consents = session.execute(
        select(Consent).where(Consent.subscriber_id == subscriber.id).order_by(col(Consent.id))
    ).scalars()
    deliveries = session.execute(
        select(Delivery, Edition.edition_date)
        .join(Edition, col(Edition.id) == col(Delivery.edition_id))
        .where(Delivery.subscriber_id == subscriber.id)
        .order_by(col(Delivery.id))
    ).all()
    return {
        "subscriber": profile,
        "ratings": [
            {
                "paper": f.paper_key,
                "value": f.value,
                "edition_id": f.edition_id,
                "at": _iso(f.created_at),
            }
            for f in ratings
        ],
        "consents": [
            {
                "form_version": c.form_version,
                "text_hash": c.text_hash,
                "ip_hash": c.ip_hash,
                "user_agent_hash": c.ua_hash,
                "requested_at": _iso(c.requested_at),
                "confirmed_at": _iso(c.confirmed_at),
            }
            for c in consents
        ],
        "deliveries": [
            {
                "edition_date": edition_date.isoformat(),
                "state": d.state,
                "sent_at": _iso(d.sent_at),
                "message_id": d.message_id,
                "papers": list(d.paper_keys or []),
            }
            for d, edition_date in deliveries
        ],
    }


def erase_subscriber(session: Session, subscriber: Subscriber, *, now: datetime | None = None):
    """Delete the subscriber and every row about them; keep only a hashed suppression entry."""
    sid = subscriber.id
    suppressions.suppress(session, subscriber.email, "erased", now=now or utcnow())
    # Every table that points at a subscriber, including ones added after this was written.
    for table in SQLModel.metadata.sorted_tables:
        if "subscriber_id" in table.c and table.name != Subscriber.__tablename__:
            session.execute(delete(table).where(table.c.subscriber_id == sid))
    session.execute(delete(Subscriber).where(Subscriber.id == sid))
