"""A subscriber's personal data as a whole: everything stored about them, to export (GDPR
Art. 15 and 20) or to erase (Art. 17), found through every table that points at a subscriber.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlmodel import SQLModel, col

from digest.models import Consent, Delivery, Edition, Feedback, Subscriber, utcnow
from digest.store import suppressions
from digest.store.uow import Tx


def _iso(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def export_subscriber(tx: Tx, subscriber: Subscriber) -> dict[str, Any]:
    """Everything stored about one subscriber, as JSON-ready data (GDPR Art. 15 and 20)."""
    profile = {name: _iso(getattr(subscriber, name)) for name in Subscriber.model_fields}
    ratings = tx.execute(
        select(Feedback).where(Feedback.subscriber_id == subscriber.id).order_by(col(Feedback.id))
    ).scalars()
    consents = tx.execute(
        select(Consent).where(Consent.subscriber_id == subscriber.id).order_by(col(Consent.id))
    ).scalars()
    deliveries = tx.execute(
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


def erase_subscriber(tx: Tx, subscriber: Subscriber, *, now: datetime | None = None):
    """Delete the subscriber and every row about them; keep only a hashed suppression entry."""
    sid = subscriber.id
    suppressions.suppress(tx, subscriber.email, "erased", now=now or utcnow())
    # Every table that points at a subscriber, including ones added after this was written.
    for table in SQLModel.metadata.sorted_tables:
        if "subscriber_id" in table.c and table.name != Subscriber.__tablename__:
            tx.execute(delete(table).where(table.c.subscriber_id == sid))
    tx.execute(delete(Subscriber).where(Subscriber.id == sid))
