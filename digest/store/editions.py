"""Editions: one row per date with its send-by instant and state, the text model fitted for
it, and holding or releasing its unsent rows while every source is failing."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from digest.models import Delivery, Edition, EditionModel

_NO_SYNC = {"synchronize_session": False}


def get_or_create_edition(
    session: Session, *, edition_date: date, send_by: datetime | None = None
) -> tuple[Edition, bool]:
    """The edition of that date, created if missing; the unique date settles races."""
    existing = session.exec(select(Edition).where(Edition.edition_date == edition_date)).first()
    if existing is not None:
        return existing, False
    dialect = session.get_bind().dialect.name
    values = {"edition_date": edition_date, "status": "planned", "send_by": send_by}
    if dialect in ("sqlite", "postgresql"):
        maker = sqlite_insert if dialect == "sqlite" else pg_insert
        statement = maker(Edition).values(**values).on_conflict_do_nothing()
    else:
        statement = insert(Edition).values(**values)
    result = session.execute(statement)
    edition = session.exec(select(Edition).where(Edition.edition_date == edition_date)).one()
    return edition, bool(result.rowcount)


def editions_past_send_by(session: Session, *, now: datetime) -> list[Edition]:
    """Editions whose window has closed but which were never marked expired."""
    return list(
        session.exec(
            select(Edition)
            .where(col(Edition.send_by).is_not(None), col(Edition.send_by) <= now)
            .where(col(Edition.status).in_(("planned", "sending")))
            .order_by(col(Edition.edition_date))
        )
    )


def load_edition_model(session: Session, edition_id: int) -> bytes | None:
    """The stored text model of this edition, if one was fitted already."""
    row = session.get(EditionModel, edition_id)
    return row.data if row is not None else None


def save_edition_model(session: Session, edition_id: int, data: bytes) -> None:
    """Store the edition's text model; a concurrent writer's copy wins just as well."""
    dialect = session.get_bind().dialect.name
    maker = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        maker(EditionModel).values(edition_id=edition_id, data=data).on_conflict_do_nothing()
    )
    session.commit()


def hold_open_rows(session: Session, edition_id: int, *, note: str) -> int:
    """Hold an edition: its unsent rows wait (state "held") and the edition says why."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.edition_id == edition_id, col(Delivery.state).in_(("pending", "deferred")))
        .values(state="held", reason=note[:200]),
        execution_options=_NO_SYNC,
    )
    session.execute(
        update(Edition).where(Edition.id == edition_id).values(status="held", note=note),
        execution_options=_NO_SYNC,
    )
    session.commit()
    return result.rowcount or 0


def release_held_rows(session: Session, edition_id: int) -> int:
    """A source came back within the edition's window: its held rows go out after all."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.edition_id == edition_id, Delivery.state == "held")
        .values(state="pending", reason=None),
        execution_options=_NO_SYNC,
    )
    session.execute(
        update(Edition).where(Edition.id == edition_id).values(note=None),
        execution_options=_NO_SYNC,
    )
    session.commit()
    return result.rowcount or 0


def set_status(session: Session, edition_id: int, status: str) -> None:
    session.execute(
        update(Edition).where(Edition.id == edition_id).values(status=status),
        execution_options=_NO_SYNC,
    )
    session.commit()
