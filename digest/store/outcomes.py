"""Recording send outcomes in groups: one transaction for everything a group of senders did.

Every UPDATE matches only a row still claimed by this worker, so a row that was taken over
(its sender presumed dead) is never overwritten by the late original. OutcomeLedger is what a
send run writes through (usecases/ledger_writer.py runs it on a thread of its own).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, URL, bindparam, func, update
from sqlmodel import Session, col, select

from digest.models import Delivery, Subscriber, UTCDateTime
from digest.store import deliveries, suppressions


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one claimed row; `state` is sent, deferred, failed or skipped.

    `reason`: why a row got no digest (skipped: "nothing new") or got the short note instead
    (sent); None for a digest, and for a skip whose subscriber left."""

    delivery_id: int
    state: str
    now: datetime
    message_id: str | None = None
    smtp_code: int | None = None
    smtp_text: str | None = None
    next_attempt_at: datetime | None = None
    paper_keys: Sequence[str] = ()
    picks: Sequence[Mapping[str, str]] = ()
    suppress_email: str | None = None
    subscriber_id: int | None = None
    reason: str | None = None


def _claimed_by_us():
    return (
        Delivery.id == bindparam("delivery_id"),
        Delivery.claimed_by == bindparam("worker"),
        Delivery.state == "claimed",
    )


# Built once: statement construction per group would cost more than the SQL itself.
_SENT = (
    update(Delivery)
    .where(*_claimed_by_us())
    .values(
        state="sent",
        attempts=Delivery.attempts + 1,
        message_id=bindparam("message_id"),
        smtp_code=bindparam("smtp_code"),
        smtp_text=bindparam("smtp_text"),
        sent_at=bindparam("now", type_=UTCDateTime()),
        paper_keys=bindparam("paper_keys", type_=JSON()),
        picks=bindparam("picks", type_=JSON()),
        reason=bindparam("reason"),
    )
)
_TRIED = (
    update(Delivery)
    .where(*_claimed_by_us())
    .values(
        state=bindparam("state"),
        attempts=Delivery.attempts + 1,
        message_id=bindparam("message_id"),
        smtp_code=bindparam("smtp_code"),
        smtp_text=bindparam("smtp_text"),
        next_attempt_at=func.coalesce(
            bindparam("next_attempt_at", type_=UTCDateTime()), Delivery.next_attempt_at
        ),
    )
)
_SKIPPED = (
    update(Delivery).where(*_claimed_by_us()).values(state="skipped", reason=bindparam("reason"))
)
_STATUSES = select(Subscriber.id, Subscriber.status).where(
    col(Subscriber.id).in_(bindparam("ids", expanding=True))
)


def record(session: Session, outcomes: Sequence[Outcome], *, worker: str) -> None:
    """Write a group of outcomes and commit once: all of them are durable, or none."""
    sent, tried, skipped = [], [], []
    for o in outcomes:
        if o.state == "sent":
            sent.append(
                {
                    "delivery_id": o.delivery_id,
                    "worker": worker,
                    "now": o.now,
                    "message_id": o.message_id,
                    "smtp_code": o.smtp_code,
                    "smtp_text": o.smtp_text,
                    "paper_keys": list(o.paper_keys),
                    "picks": [dict(p) for p in o.picks],
                    "reason": o.reason,
                }
            )
        elif o.state == "skipped":
            skipped.append({"delivery_id": o.delivery_id, "worker": worker, "reason": o.reason})
        else:
            tried.append(
                {
                    "delivery_id": o.delivery_id,
                    "worker": worker,
                    "state": o.state,
                    "message_id": o.message_id,
                    "smtp_code": o.smtp_code,
                    "smtp_text": o.smtp_text,
                    "next_attempt_at": o.next_attempt_at,
                }
            )
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # The durability SQLite's WAL + synchronous=NORMAL gives (db.py): a commit survives our
        # process dying at any moment, and only a crash of the database server or of the OS
        # can lose the last fraction of a second of records. Waiting for the WAL flush of every
        # group instead (~10 ms here) held each connection idle and made PostgreSQL's send
        # phase 2.7x SQLite's.
        connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
    for statement, rows in ((_SENT, sent), (_TRIED, tried), (_SKIPPED, skipped)):
        if rows:
            connection.execute(statement, rows)
    for o in outcomes:
        if o.suppress_email is not None and o.subscriber_id is not None:
            suppressions.suppress(session, o.suppress_email, "hard_bounce", now=o.now)
    session.commit()


class OutcomeLedger:
    """One run's outcomes, written on its own session; not thread-safe (one thread uses it).

    On PostgreSQL, groups made only of "sent" rows go as one statement on a connection of their
    own in autocommit, with the commit durability of record().
    """

    def __init__(self, session: Session, *, worker: str) -> None:
        self.worker = worker
        self._session = session
        self._autocommit: Any = None
        engine = session.get_bind()
        if engine.dialect.name == "postgresql":
            self._autocommit = _psycopg_autocommit(engine.url)

    def write(self, group: Sequence[Outcome]) -> None:
        """Make a group durable, all of it or none (the error is raised then)."""
        try:
            if self._autocommit is not None and all(o.state == "sent" for o in group):
                record_sent_postgres(self._autocommit, group, self.worker)
            else:
                record(self._session, group, worker=self.worker)
        except BaseException:
            self._session.rollback()
            raise

    def renew(self, edition_id: int, *, now: datetime) -> None:
        """Stamp this worker's open claims of the edition with `now` (see renew_claims)."""
        try:
            deliveries.renew_claims(
                self._session, edition_id=edition_id, worker=self.worker, now=now
            )
        except BaseException:
            self._session.rollback()
            raise

    def statuses(self, subscriber_ids: Sequence[int]) -> dict[int, str]:
        return statuses(self._session, subscriber_ids)

    def close(self) -> None:
        if self._autocommit is not None:
            self._autocommit.close()


def _psycopg_autocommit(url: URL) -> Any:
    """A psycopg connection of its own (not the pool's: its settings must not leak)."""
    import psycopg

    url = url.set(drivername="postgresql")
    query = dict(url.query)
    options = query.pop("options", None)
    plain = url.set(query=query).render_as_string(hide_password=False)
    connection = psycopg.connect(
        plain, autocommit=True, **({"options": options} if options else {})
    )
    connection.execute("SET synchronous_commit = off")
    return connection


def record_sent_postgres(driver_connection: Any, outcomes: Sequence[Outcome], worker: str) -> None:
    """A group made only of "sent" rows, as one UPDATE on an autocommit connection.

    One statement is one transaction and one round trip, where the general path costs three
    (SET LOCAL, the UPDATEs, COMMIT): with the connections waiting on each group, round trips
    to the database server are what the send rate pays for.
    """
    rows = ", ".join(
        ["(%s::int, %s, %s::int, %s, %s::timestamptz, %s::json, %s::json, %s::text)"]
        * len(outcomes)
    )
    params: list[Any] = []
    for o in outcomes:
        params += [
            o.delivery_id,
            o.message_id,
            o.smtp_code,
            o.smtp_text,
            o.now,
            json.dumps(list(o.paper_keys)),
            json.dumps([dict(p) for p in o.picks]),
            o.reason,
        ]
    params.append(worker)
    driver_connection.execute(
        "UPDATE delivery AS d SET state = 'sent', attempts = d.attempts + 1, "
        "message_id = v.message_id, smtp_code = v.smtp_code, smtp_text = v.smtp_text, "
        "sent_at = v.sent_at, paper_keys = v.paper_keys, picks = v.picks, reason = v.reason "
        f"FROM (VALUES {rows}) AS v(id, message_id, smtp_code, smtp_text, sent_at, "
        "paper_keys, picks, reason) "
        "WHERE d.id = v.id AND d.claimed_by = %s AND d.state = 'claimed'",
        params,
    )


def statuses(session: Session, subscriber_ids: Sequence[int]) -> dict[int, str]:
    """Each subscriber's status now, read in one query outside any long transaction."""
    if not subscriber_ids:
        return {}
    rows = session.connection().execute(_STATUSES, {"ids": list(subscriber_ids)})
    result = {subscriber_id: status for subscriber_id, status in rows}
    session.commit()
    return result


def sent_count(session: Session, *, since: datetime, until: datetime) -> int:
    """Messages sent in (since, until]: the denominator of the complaint rate."""
    query = select(func.count()).where(
        col(Delivery.sent_at) > since, col(Delivery.sent_at) <= until
    )
    return int(session.exec(query).one())


def latest_sent(
    session: Session, subscriber_id: int, edition_id: int | None = None
) -> tuple[int | None, list[str]]:
    """(edition id, paper keys in digest order) of the subscriber's latest sent digest, of
    `edition_id` when given; (None, []) when there is none."""
    query = select(Delivery).where(
        Delivery.subscriber_id == subscriber_id, col(Delivery.sent_at).is_not(None)
    )
    if edition_id is not None:
        query = query.where(Delivery.edition_id == edition_id)
    row = session.exec(query.order_by(col(Delivery.sent_at).desc())).first()
    return (row.edition_id, list(row.paper_keys)) if row else (None, [])
