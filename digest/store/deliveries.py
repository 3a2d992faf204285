"""The delivery ledger: editions, planning their rows, claiming, and recording outcomes.

Planning is one bulk INSERT that skips existing (edition, subscriber) pairs; claiming is a
conditional UPDATE (FOR UPDATE SKIP LOCKED on PostgreSQL); each outcome is its own small UPDATE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import JSON, and_, bindparam, func, insert, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from digest.models import Delivery, Edition, EditionModel, Subscriber, UTCDateTime

OPEN_STATES = ("pending", "deferred")
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


def plan_deliveries(session: Session, *, edition_id: int, subscriber_ids: Sequence[int]) -> int:
    """Write one pending row per subscriber not yet in this edition; return how many are new."""
    if not subscriber_ids:
        return 0
    dialect = session.get_bind().dialect.name
    rows = [
        {
            "edition_id": edition_id,
            "subscriber_id": s,
            "state": "pending",
            "attempts": 0,
            "paper_keys": [],
        }
        for s in subscriber_ids
    ]
    maker = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = maker(Delivery).on_conflict_do_nothing(
        index_elements=["edition_id", "subscriber_id"]
    )
    count = select(func.count()).select_from(Delivery).where(Delivery.edition_id == edition_id)
    before = session.exec(count).one()
    session.connection().execute(statement, rows)
    return session.exec(count).one() - before


def claim_batch(
    session: Session,
    *,
    edition_id: int,
    worker: str,
    limit: int,
    now: datetime,
    lease_s: float,
) -> list[Delivery]:
    """Claim up to `limit` due rows (open, or claimed by a worker whose lease ran out)."""
    stale = now - timedelta(seconds=lease_s)
    due = and_(
        Delivery.edition_id == edition_id,
        or_(
            and_(
                col(Delivery.state).in_(OPEN_STATES),
                or_(col(Delivery.next_attempt_at).is_(None), Delivery.next_attempt_at <= now),
            ),
            and_(Delivery.state == "claimed", col(Delivery.claimed_at) < stale),
        ),
    )
    query = select(Delivery.id).where(due).order_by(col(Delivery.id)).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.exec(query))
    if not ids:
        return []
    session.execute(
        update(Delivery)
        .where(col(Delivery.id).in_(ids))
        .values(state="claimed", claimed_by=worker, claimed_at=now),
        execution_options=_NO_SYNC,
    )
    session.commit()
    # populate_existing: rows seen in an earlier batch of this session must show the counts
    # the outcome UPDATEs wrote since (attempts decide when a deferred message gives up).
    fresh = select(Delivery).where(col(Delivery.id).in_(ids))
    return list(session.exec(fresh.execution_options(populate_existing=True)))


# Built once: the send path records a "sent" per message, so statement construction and
# cache-key work per call would cost more than the SQL itself.
_MARK_SENT = (
    update(Delivery)
    .where(
        Delivery.id == bindparam("delivery_id"),
        Delivery.claimed_by == bindparam("worker"),
        Delivery.state == "claimed",
    )
    .values(
        state="sent",
        attempts=Delivery.attempts + 1,
        message_id=bindparam("message_id"),
        smtp_code=bindparam("smtp_code"),
        smtp_text=bindparam("smtp_text"),
        sent_at=bindparam("now", type_=UTCDateTime()),
        paper_keys=bindparam("paper_keys", type_=JSON()),
        picks=bindparam("picks", type_=JSON()),
    )
)
_STATUS = select(Subscriber.status).where(Subscriber.id == bindparam("subscriber_id"))


def mark_sent(
    session: Session,
    delivery_id: int,
    *,
    worker: str,
    now: datetime,
    message_id: str,
    smtp_code: int | None,
    smtp_text: str | None,
    paper_keys: Sequence[str],
    picks: Sequence[Mapping[str, str]] = (),
) -> bool:
    """Record a delivered message in its own commit (the hot path of `mark`)."""
    result = session.connection().execute(
        _MARK_SENT,
        {
            "delivery_id": delivery_id,
            "worker": worker,
            "now": now,
            "message_id": message_id,
            "smtp_code": smtp_code,
            "smtp_text": smtp_text,
            "paper_keys": list(paper_keys),
            "picks": [dict(p) for p in picks],
        },
    )
    session.commit()
    return bool(result.rowcount)


def subscriber_status(session: Session, subscriber_id: int) -> str | None:
    """The subscriber's status now, read outside any long transaction."""
    status = session.connection().execute(_STATUS, {"subscriber_id": subscriber_id}).scalar()
    session.commit()
    return status


def mark(
    session: Session,
    delivery_id: int,
    *,
    state: str,
    now: datetime,
    worker: str | None = None,
    message_id: str | None = None,
    smtp_code: int | None = None,
    smtp_text: str | None = None,
    next_attempt_at: datetime | None = None,
    paper_keys: Sequence[str] | None = None,
    count_attempt: bool = True,
) -> bool:
    """Record one outcome in its own commit; only the claiming worker's row is changed."""
    values: dict[str, object] = {"state": state, "smtp_code": smtp_code, "smtp_text": smtp_text}
    if count_attempt:
        values["attempts"] = Delivery.attempts + 1
    if message_id is not None:
        values["message_id"] = message_id
    if state == "sent":
        values["sent_at"] = now
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if paper_keys is not None:
        values["paper_keys"] = list(paper_keys)
    condition = Delivery.id == delivery_id
    if worker is not None:
        condition = and_(condition, Delivery.claimed_by == worker, Delivery.state == "claimed")
    # Core-level update: the ORM's session synchronisation would scan every loaded row per call.
    result = session.execute(
        update(Delivery).where(condition).values(**values), execution_options=_NO_SYNC
    )
    session.commit()
    return bool(result.rowcount)


def delivered_keys(session: Session, subscriber_ids: Sequence[int]) -> dict[int, set[str]]:
    """Paper keys already sent to each subscriber (never sent twice)."""
    result: dict[int, set[str]] = {i: set() for i in subscriber_ids}
    if not subscriber_ids:
        return result
    rows = session.exec(
        select(Delivery.subscriber_id, Delivery.paper_keys).where(
            col(Delivery.subscriber_id).in_(list(subscriber_ids)), Delivery.state == "sent"
        )
    )
    for subscriber_id, keys in rows:
        result[subscriber_id].update(keys or [])
    return result


def state_counts(session: Session, edition_id: int) -> dict[str, int]:
    rows = session.exec(
        select(Delivery.state, func.count())
        .where(Delivery.edition_id == edition_id)
        .group_by(Delivery.state)
    )
    return {state: count for state, count in rows}


def subscribers_of(session: Session, ids: Sequence[int]) -> dict[int, Subscriber]:
    if not ids:
        return {}
    return {
        s.id: s for s in session.exec(select(Subscriber).where(col(Subscriber.id).in_(list(ids))))
    }


def expire_open(session: Session, edition_id: int) -> int:
    """Mark every unsent row of a past edition expired: stale news is not sent late."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.edition_id == edition_id,
            col(Delivery.state).in_((*OPEN_STATES, "claimed")),
        )
        .values(state="expired")
    )
    session.execute(update(Edition).where(Edition.id == edition_id).values(status="expired"))
    session.commit()
    return result.rowcount or 0


def next_retry_at(session: Session, edition_id: int) -> datetime | None:
    """When the earliest deferred row of this edition becomes due, or None when none is left."""
    return session.exec(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.edition_id == edition_id, col(Delivery.state).in_(OPEN_STATES)
        )
    ).one()


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


def sent_picks(session: Session, *, edition_id: int, subscriber_id: int) -> list[dict[str, str]]:
    """What this subscriber's message of that edition showed, or [] if none was sent."""
    row = session.exec(
        select(Delivery.picks).where(
            Delivery.edition_id == edition_id,
            Delivery.subscriber_id == subscriber_id,
            Delivery.state == "sent",
        )
    ).first()
    return list(row or [])
