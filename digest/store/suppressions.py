"""The suppression list: the one rule for blocking an address, and for lifting that block.

An address is stored only as a hash, once. Two kinds of reason exist: the person's own
(unsubscribed, erased), lifted when they consent again, and the mail system's (a hard or
repeated soft bounce, a complaint), which are final. A system reason replaces a person's
reason, never the reverse, so an address that has since died stays blocked after a
re-subscription. A system reason also marks the subscriber `suppressed`; for a person's
reason the use case sets the status it means (`unsubscribed`, or deletes the row).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlmodel import Session, col

from digest.models import Subscriber, Suppression

SELF_REASONS = ("unsubscribed", "erased")
SYSTEM_REASONS = ("hard_bounce", "soft_bounce", "complaint")


def email_hash(email: str) -> str:
    """The suppression key of an address: SHA-256 of its lower-cased form."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


def reason(session: Session, email: str) -> str | None:
    """Why the address is suppressed, or None when it is not."""
    row = session.execute(
        select(Suppression.reason).where(Suppression.email_hash == email_hash(email))
    ).first()
    return row[0] if row else None


def is_suppressed(session: Session, email: str) -> bool:
    return reason(session, email) is not None


def suppress(session: Session, email: str, why: str, *, now: datetime) -> None:
    """Block the address for `why` under the rule above; the caller commits."""
    key = email_hash(email)
    row = (
        session.execute(select(Suppression).where(Suppression.email_hash == key)).scalars().first()
    )
    if row is None:
        session.add(Suppression(email_hash=key, reason=why, created_at=now))
    elif row.reason in SELF_REASONS and why not in SELF_REASONS:
        row.reason = why
        session.add(row)
    if why not in SELF_REASONS:
        session.execute(
            update(Subscriber)
            .where(col(Subscriber.email) == email.strip().lower())
            .where(col(Subscriber.status) != "suppressed")
            .values(status="suppressed")
        )
    session.flush()


def lift(session: Session, email: str, reasons: Sequence[str] = SELF_REASONS) -> None:
    """Remove a block the person caused (unsubscribe, erasure) when they consent again."""
    allowed = [r for r in reasons if r in SELF_REASONS]
    session.execute(
        delete(Suppression).where(
            Suppression.email_hash == email_hash(email), col(Suppression.reason).in_(allowed)
        )
    )
