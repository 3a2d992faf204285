"""How fresh the stored content is: the newest edition, the last fetch, how many papers.

The landing page is rebuilt when these change; the health check reports their ages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text

from digest.models import Edition, FeedState, Paper
from digest.store.uow import Tx


def content_marks(tx: Tx) -> tuple[Any, Any]:
    """(the newest edition's id, the last fetch's time), read in one statement."""
    edition, fetched = tx.execute(
        select(
            select(func.max(Edition.id)).scalar_subquery(),
            select(func.max(FeedState.last_fetch_at)).scalar_subquery(),
        )
    ).one()
    return edition, fetched


@dataclass(frozen=True)
class StoreVitals:
    last_success_fetch: datetime | None
    last_edition_created: datetime | None
    papers: int


def vitals(tx: Tx) -> StoreVitals:
    """What the health check reports; raises whatever the driver raises when the database is
    unreachable."""
    tx.execute(text("SELECT 1"))
    return StoreVitals(
        last_success_fetch=tx.execute(select(func.max(FeedState.last_success_at))).scalar(),
        last_edition_created=tx.execute(select(func.max(Edition.created_at))).scalar(),
        papers=tx.execute(select(func.count(Paper.id))).scalar() or 0,
    )
