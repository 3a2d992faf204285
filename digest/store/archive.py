"""Ledger reads for what was sent: one delivery by id (short rating links) and a subscriber's
delivered digests, newest first (the archive and the personal feed)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from digest.models import Delivery, Edition


def delivery(session: Session, delivery_id: int) -> Delivery | None:
    return session.get(Delivery, delivery_id)


def sent_row(session: Session, *, edition_id: int, subscriber_id: int) -> Delivery | None:
    """This subscriber's delivered digest of that edition, if one was sent."""
    return session.exec(
        select(Delivery).where(
            Delivery.edition_id == edition_id,
            Delivery.subscriber_id == subscriber_id,
            Delivery.state == "sent",
        )
    ).first()


def shown_keys(row: Delivery) -> list[str]:
    """The papers a delivered digest showed, in its order."""
    return [p["id"] for p in row.picks or []] or list(row.paper_keys or [])


def delivered(
    session: Session, subscriber_id: int, *, limit: int = 60
) -> list[tuple[Delivery, Edition]]:
    """This subscriber's delivered digests (not notes), newest first."""
    rows = session.exec(
        select(Delivery, Edition)
        .join(Edition, col(Edition.id) == Delivery.edition_id)
        .where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.state == "sent",
            col(Delivery.reason).is_(None),
        )
        .order_by(col(Edition.edition_date).desc(), col(Delivery.id).desc())
        .limit(limit)
    )
    return [(d, e) for d, e in rows if shown_keys(d)]


def edition(session: Session, edition_id: int) -> Edition | None:
    return session.get(Edition, edition_id)
