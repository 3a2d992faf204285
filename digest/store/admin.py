"""Queries behind the admin commands: list import/export, editions and their outcomes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from digest.models import BounceEvent, Edition, Subscriber
from digest.store import deliveries as ledger

EXPORT_STATUSES = ("active", "paused", "pending")


@dataclass(frozen=True)
class ImportRow:
    """One validated CSV row; `line` is its line number in the file (the header is line 1)."""

    line: int
    email: str
    interests: str
    categories: tuple[str, ...] = ()
    seed_papers: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    timezone: str = "UTC"
    hour: int = 7


@dataclass
class ImportReport:
    added: int = 0
    present: int = 0
    suppressed: int = 0


def export_subscribers(session: Session, statuses: Iterable[str] = EXPORT_STATUSES):
    query = (
        select(Subscriber)
        .where(col(Subscriber.status).in_(list(statuses)))
        .order_by(col(Subscriber.id))
    )
    return list(session.exec(query))


def _edition_dict(session: Session, edition: Edition) -> dict[str, Any]:
    events = dict(
        session.exec(
            select(BounceEvent.kind, func.count())
            .where(BounceEvent.edition_id == edition.id)
            .group_by(BounceEvent.kind)
        ).all()
    )
    return {
        "id": edition.id,
        "date": edition.edition_date.isoformat(),
        "status": edition.status,
        "note": edition.note,
        "created_at": edition.created_at.isoformat(),
        "send_by": edition.send_by.isoformat() if edition.send_by else None,
        "deliveries": ledger.state_counts(session, edition.id),
        "reports": events,
    }


def list_editions(session: Session, *, limit: int = 30) -> list[dict[str, Any]]:
    rows = session.exec(select(Edition).order_by(col(Edition.edition_date).desc()).limit(limit))
    return [_edition_dict(session, e) for e in rows]


def find_edition(session: Session, ref: str) -> dict[str, Any] | None:
    """An edition by date (YYYY-MM-DD) or by id."""
    edition: Edition | None = None
    if ref.isdigit():
        edition = session.get(Edition, int(ref))
    else:
        try:
            day = date.fromisoformat(ref)
        except ValueError:
            return None
        edition = session.exec(select(Edition).where(Edition.edition_date == day)).first()
    return _edition_dict(session, edition) if edition else None
