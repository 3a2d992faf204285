"""The delivery ledger: planning an edition's rows, claiming them, and what they hold.

Planning is one bulk INSERT that skips existing (edition, subscriber) pairs; claiming is a
conditional UPDATE (FOR UPDATE SKIP LOCKED on PostgreSQL); outcomes are recorded in groups by
store/outcomes.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlmodel import Session, col, select

from digest.models import Delivery, Edition, Subscriber

OPEN_STATES = ("pending", "deferred")
_NO_SYNC = {"synchronize_session": False}


def plan_deliveries(session: Session, *, edition_id: int, subscriber_ids: Sequence[int]) -> int:
    """Write one pending row per subscriber not yet in this edition; return how many are new.

    One statement for the whole list, through the driver: on PostgreSQL the ids travel as one
    array (a multi-row VALUES of 100,000 placeholders costs more to parse than to run), on
    SQLite as an executemany of plain tuples.
    """
    if not subscriber_ids:
        return 0
    connection = session.connection()
    columns = "edition_id, subscriber_id, state, attempts, paper_keys, picks"
    if connection.dialect.name == "postgresql":
        result = connection.exec_driver_sql(
            f"INSERT INTO delivery ({columns}) "
            "SELECT %s, s, 'pending', 0, '[]', '[]' FROM unnest(%s::int[]) AS s "
            "ON CONFLICT (edition_id, subscriber_id) DO NOTHING",
            (edition_id, list(subscriber_ids)),
        )
        return result.rowcount
    count = select(func.count()).select_from(Delivery).where(Delivery.edition_id == edition_id)
    before = session.exec(count).one()
    connection.exec_driver_sql(
        f"INSERT INTO delivery ({columns}) VALUES (?, ?, 'pending', 0, '[]', '[]') "
        "ON CONFLICT (edition_id, subscriber_id) DO NOTHING",
        [(edition_id, s) for s in subscriber_ids],
    )
    return session.exec(count).one() - before


def has_sendable(session: Session, edition_id: int, *, now: datetime, lease_s: float) -> bool:
    """True when a row can be claimed now: open and due, or claimed with its lease run out."""
    stale = now - timedelta(seconds=lease_s)
    row = session.exec(
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.edition_id == edition_id,
            or_(
                col(Delivery.state).in_(OPEN_STATES)
                & or_(
                    col(Delivery.next_attempt_at).is_(None), col(Delivery.next_attempt_at) <= now
                ),
                (Delivery.state == "claimed") & (col(Delivery.claimed_at) < stale),
            ),
        )
    ).one()
    return bool(row)


def claim_batch(
    session: Session,
    *,
    edition_id: int,
    worker: str,
    limit: int,
    now: datetime,
    lease_s: float,
    takeable: Sequence[str] = (),
    after_id: int = 0,
) -> list[Delivery]:
    """Claim up to `limit` due rows: claims of dead senders (`takeable`) or whose lease ran
    out first, then due deferred rows, then pending ones.

    Each kind is its own query on the (edition, state, id) index, so a batch reads about
    `limit` index entries however many rows of the edition were sent already. Pending rows
    are looked for past `after_id` (the caller's last claim) first: on PostgreSQL the index
    keeps entries of rows that were pending until vacuum runs, and scanning from the start
    would step over all of them every batch. Rows left behind are found by a rescan from
    the start when the rows past the cursor run out.
    """
    at_edition = Delivery.edition_id == edition_id
    claimed = and_(at_edition, Delivery.state == "claimed")
    due = or_(col(Delivery.next_attempt_at).is_(None), Delivery.next_attempt_at <= now)
    pending = and_(at_edition, Delivery.state == "pending", due)
    kinds = [
        and_(claimed, col(Delivery.claimed_at) < now - timedelta(seconds=lease_s)),
        and_(at_edition, Delivery.state == "deferred", Delivery.next_attempt_at <= now),
        and_(pending, Delivery.id > after_id) if after_id else pending,
    ]
    if after_id:
        kinds.append(pending)
    if takeable:
        kinds.insert(0, and_(claimed, col(Delivery.claimed_by).in_(list(takeable))))
    postgres = session.get_bind().dialect.name == "postgresql"
    ids: list[int] = []
    for condition in kinds:
        if len(ids) >= limit:
            break
        query = select(Delivery.id).where(condition).order_by(col(Delivery.id))
        query = query.limit(limit - len(ids))
        if postgres:
            query = query.with_for_update(skip_locked=True)
        taken = set(ids)
        ids.extend(i for i in session.exec(query) if i not in taken)
    if not ids:
        session.commit()
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
    fresh = select(Delivery).where(col(Delivery.id).in_(ids)).order_by(col(Delivery.id))
    return list(session.exec(fresh.execution_options(populate_existing=True)))


def _open_claims(edition_id: int, worker: str) -> tuple[Any, ...]:
    """This worker's rows of the edition that it claimed and has not recorded yet."""
    return (
        Delivery.edition_id == edition_id,
        Delivery.claimed_by == worker,
        Delivery.state == "claimed",
    )


def renew_claims(session: Session, *, edition_id: int, worker: str, now: datetime) -> None:
    """Start the lease of this worker's open claims again: it is alive and sending them."""
    session.execute(
        update(Delivery).where(*_open_claims(edition_id, worker)).values(claimed_at=now),
        execution_options=_NO_SYNC,
    )
    session.commit()


def release_claims(session: Session, *, edition_id: int, worker: str) -> None:
    """Hand this worker's unsent claims back (pending again), so a stop costs no message."""
    session.execute(
        update(Delivery)
        .where(*_open_claims(edition_id, worker))
        .values(state="pending", claimed_by=None, claimed_at=None),
        execution_options=_NO_SYNC,
    )
    session.commit()


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
