"""The health check: is the database reachable, and how old are the last fetch and edition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from digest.models import utcnow
from digest.store import freshness

if TYPE_CHECKING:
    from digest.bootstrap import Services


@dataclass(frozen=True)
class Health:
    database_error: str | None = None  # the driver error's type when the database failed
    papers: int = 0
    last_fetch_age_s: float | None = None
    last_edition_age_s: float | None = None


def _age(now: datetime, value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite aggregates may bypass the column type
        value = value.replace(tzinfo=UTC)
    return round((now - value).total_seconds(), 1)


def check(services: Services) -> Health:
    """Never raises: a failing database is the answer, not an error."""
    now = utcnow()
    try:
        with services.reading() as tx:
            vitals = freshness.vitals(tx)
    except Exception as exc:  # any driver error means "not healthy", reported, not raised
        return Health(database_error=type(exc).__name__)
    return Health(
        papers=vitals.papers,
        last_fetch_age_s=_age(now, vitals.last_success_fetch),
        last_edition_age_s=_age(now, vitals.last_edition_created),
    )
