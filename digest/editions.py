"""Use case: plan an edition, then claim, rank, render, send and record its deliveries.

The Delivery ledger is the only record of what was sent. A batch of rows is claimed, ranked and
rendered together; each message re-checks its subscriber just before it goes out and its outcome
is committed at once. A crash leaves claimed rows that a later run resumes after the lease, with
the same Message-ID (at-least-once, duplicates bounded by the number of connections).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session

from digest import bounces, edition_states, nothing_new, timetable
from digest.bootstrap import Services
from digest.digests import (  # re-exported: the web app and previews build digests through here
    EditionContext,
    compose_message,
    digests_for,
    edition_context,
)
from digest.mailer import RateLimiter, RelayBreaker, SendOutcome, SmtpConnection
from digest.models import Delivery, Edition, Subscriber, Suppression, utcnow
from digest.render import message_id
from digest.store import deliveries as ledger
from digest.store import subscribers as subscriber_store
from digest.store import windows as window_store

__all__ = [
    "EditionContext",
    "SendReport",
    "compose_message",
    "digests_for",
    "edition_context",
    "plan_edition",
    "send_edition",
]


@dataclass
class SendReport:
    """What one send run did; `seconds` is wall time."""

    planned: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    suppressed: int = 0
    skipped: int = 0
    expired: int = 0
    seconds: float = 0.0
    relay_down: bool = False
    relay_trips: int = 0
    paused: bool = False
    # Subscribers whose window held nothing new: no digest (a note if they asked for one).
    nothing_new: int = 0
    notes: int = 0
    # The hold note when every source failed and the edition was held.
    held: str = ""
    status: str = ""

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def plan_edition(
    services: Services,
    *,
    now: datetime,
    edition_date: date | None = None,
    due_only: bool = False,
) -> tuple[Edition, int]:
    """The edition for `now` (or `edition_date`) and how many delivery rows were added to it.

    With `due_only`, only subscribers whose delivery moment has come within the edition's
    window are planned (the worker's rule, see timetable.py); otherwise every active one.
    """
    hour = services.settings.scheduler.edition_hour
    edition_date = edition_date or timetable.edition_date_at(now, hour)
    start, send_by = timetable.edition_window(edition_date, hour)
    with Session(services.engine, expire_on_commit=False) as session:
        edition, _ = ledger.get_or_create_edition(
            session, edition_date=edition_date, send_by=send_by
        )
        subscribers = subscriber_store.active_subscribers(session)
        if due_only:
            subscribers = [
                s for s in subscribers if timetable.due_in_window(s, start=start, now=now)
            ]
        planned = ledger.plan_deliveries(
            session, edition_id=edition.id, subscriber_ids=[s.id for s in subscribers]
        )
        session.commit()
        if edition.status != "held":
            edition_states.refresh(session, edition)
        return edition, planned


@dataclass
class _Job:
    delivery: Delivery
    subscriber: Subscriber
    message: bytes
    keys: list[str]
    message_id: str
    picks: list[dict[str, str]]
    # Set for the short "nothing new" note: recorded as sent with this reason.
    note: str | None = None


class _Run:
    """One send run's shared state: the session, counters and the relay's health."""

    def __init__(
        self,
        services: Services,
        edition: Edition,
        *,
        worker: str,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
        should_stop: Callable[[], bool],
        progress: Callable[[int], None] | None,
    ) -> None:
        smtp = services.settings.smtp
        self.services = services
        self.edition = edition
        self.worker = worker
        self.clock = clock
        self.sleep = sleep
        self.should_stop = should_stop
        self.progress = progress
        self.report = SendReport()
        self.session = Session(services.engine, expire_on_commit=False)
        self.limiter = RateLimiter(smtp.max_rate_per_s, sleep=sleep)
        self.breaker = RelayBreaker(
            base_s=smtp.relay_backoff_base_s,
            max_s=smtp.relay_backoff_max_s,
            give_up_s=smtp.relay_give_up_s,
            sleep=sleep,
        )

    def still_active(self, subscriber_id: int) -> bool:
        # Checked just before each message: an unsubscribe that lands mid-edition wins.
        return ledger.subscriber_status(self.session, subscriber_id) == "active"

    def record(self, job: _Job, outcome: SendOutcome) -> None:
        settings = self.services.settings
        now = self.clock()
        report = self.report
        common = dict(
            now=now,
            worker=self.worker,
            message_id=job.message_id,
            smtp_code=outcome.code,
            smtp_text=outcome.text,
        )
        attempts = job.delivery.attempts + 1
        if outcome.kind == "sent":
            ledger.mark_sent(
                self.session,
                job.delivery.id,
                worker=self.worker,
                now=now,
                message_id=job.message_id,
                smtp_code=outcome.code,
                smtp_text=outcome.text,
                paper_keys=job.keys,
                picks=job.picks,
            )
            report.sent += 1
            if job.note:
                window_store.mark_note_sent(self.session, job.delivery.id, reason=job.note)
                report.notes += 1
        elif outcome.kind == "deferred" and attempts < settings.delivery.max_attempts:
            retry_at = _retry_at(settings.delivery.backoff_base_s, attempts, now)
            ledger.mark(
                self.session, job.delivery.id, state="deferred", next_attempt_at=retry_at, **common
            )
            report.deferred += 1
        else:
            ledger.mark(self.session, job.delivery.id, state="failed", **common)
            report.failed += 1
            if outcome.hard_bounce:
                _suppress(self.session, job.subscriber, "hard_bounce", now)
                report.suppressed += 1
        if self.progress:
            self.progress(1)

    def skip(self, delivery: Delivery, reason: str | None = None) -> None:
        if reason:
            window_store.mark_skipped(
                self.session, delivery.id, reason=reason, now=self.clock(), worker=self.worker
            )
        else:
            ledger.mark(
                self.session,
                delivery.id,
                state="skipped",
                now=self.clock(),
                worker=self.worker,
                count_attempt=False,
            )
        self.report.skipped += 1
        if self.progress:
            self.progress(1)

    async def send_all(self, jobs: list[_Job]) -> None:
        """Send jobs over several reused connections; a relay outage requeues, never fails."""
        queue: asyncio.Queue[_Job] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        settings = self.services.settings
        # Bounces go to the bounce address (handled by `digest inbound`), not to the From.
        sender = settings.inbound.bounce_address or settings.email.from_address

        async def one_connection() -> None:
            connection = SmtpConnection(self.services.settings.smtp)
            try:
                while not queue.empty():
                    if self.should_stop() or self.breaker.gave_up:
                        return
                    job = queue.get_nowait()
                    if not self.still_active(job.subscriber.id):
                        self.skip(job.delivery)
                        continue
                    await self.breaker.wait()
                    await self.limiter.acquire()
                    outcome = await connection.send(
                        sender=sender, recipient=job.subscriber.email, message=job.message
                    )
                    if outcome.kind == "relay":
                        self.breaker.failure()
                        queue.put_nowait(job)
                        continue
                    self.breaker.success()
                    self.record(job, outcome)
            finally:
                await connection.close()

        width = min(self.services.settings.smtp.connections, max(len(jobs), 1))
        await asyncio.gather(*(one_connection() for _ in range(width)))
        self.report.relay_trips = self.breaker.trips

    def release_claims(self) -> None:
        """Hand this worker's unsent claims back, so a stop or an outage costs no message."""
        self.session.execute(
            update(Delivery)
            .where(
                Delivery.edition_id == self.edition.id,
                Delivery.claimed_by == self.worker,
                Delivery.state == "claimed",
            )
            .values(state="pending", claimed_by=None, claimed_at=None),
            execution_options={"synchronize_session": False},
        )
        self.session.commit()


def _retry_at(base_s: float, attempts: int, now: datetime) -> datetime:
    delay = base_s * (2 ** max(attempts - 1, 0)) * random.uniform(0.8, 1.2)
    return now + timedelta(seconds=delay)


def _suppress(session: Session, subscriber: Subscriber, reason: str, now: datetime) -> None:
    if not subscriber_store.is_suppressed(session, subscriber.email):
        key = subscriber_store.email_hash(subscriber.email)
        session.add(Suppression(email_hash=key, reason=reason, created_at=now))
    session.execute(
        update(Subscriber).where(Subscriber.id == subscriber.id).values(status="suppressed")
    )
    session.commit()


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**6):06x}"


async def send_edition(
    services: Services,
    edition: Edition,
    *,
    now: datetime | None = None,
    worker: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
    should_stop: Callable[[], bool] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    wait_for_retries: bool = False,
) -> SendReport:
    """Send every due row of this edition; returns counts. Never sends a 'sent' row again.

    `wait_for_retries` keeps the run going until deferred rows are sent or out of attempts
    (tests and one-shot sends); the worker instead comes back every minute.
    """
    settings = services.settings
    started = time.perf_counter()
    run = _Run(
        services,
        edition,
        worker=worker or default_worker_name(),
        clock=clock,
        sleep=sleep,
        should_stop=should_stop or (lambda: False),
        progress=progress,
    )
    now = now or clock()
    session = run.session
    try:
        if edition.send_by is not None and now > edition.send_by:
            run.report.expired = ledger.expire_open(session, edition.id)
            return run.report
        if dry_run:
            counts = ledger.state_counts(session, edition.id)
            run.report.planned = sum(counts.get(state, 0) for state in ledger.OPEN_STATES)
            return run.report
        start, _ = timetable.edition_window(edition.edition_date, settings.scheduler.edition_hour)
        run.report.held = edition_states.check_hold(session, settings, edition, since=start)
        if run.report.held:
            return run.report
        context = edition_context(services, session, edition, now=now)
        while not run.should_stop():
            # A complaint-rate pause (bounces.py) stops the edition until an operator resumes.
            if bounces.sending_paused(session):
                run.report.paused = True
                break
            batch = ledger.claim_batch(
                session,
                edition_id=edition.id,
                worker=run.worker,
                limit=settings.delivery.batch_size,
                now=clock(),
                lease_s=settings.delivery.lease_s,
            )
            if not batch:
                wake_at = ledger.next_retry_at(session, edition.id) if wait_for_retries else None
                if wake_at is None:
                    break
                await sleep(max((wake_at - clock()).total_seconds(), 0.0) + 0.01)
                continue
            subscribers = ledger.subscribers_of(session, [d.subscriber_id for d in batch])
            live = []
            for delivery in batch:
                subscriber = subscribers.get(delivery.subscriber_id)
                if subscriber is None or subscriber.status != "active":
                    run.skip(delivery)
                else:
                    live.append((delivery, subscriber))
            jobs, empty = _jobs(services, session, context, live, now=clock())
            for delivery in empty:
                run.skip(delivery, nothing_new.REASON)
                run.report.nothing_new += 1
            await run.send_all(jobs)
            if run.should_stop() or run.breaker.gave_up:
                run.report.relay_down = run.breaker.gave_up
                break
        run.release_claims()
    finally:
        try:
            run.report.status = edition_states.refresh(session, edition)
        finally:
            session.close()
        run.report.seconds = time.perf_counter() - started
    return run.report


def _jobs(
    services: Services,
    session: Session,
    context: EditionContext,
    live: list[tuple[Delivery, Subscriber]],
    *,
    now: datetime,
) -> tuple[list[_Job], list[Delivery]]:
    """Rank and render a claimed batch at once: one message per delivery whose window holds
    something new (or a "nothing new" note for those who asked), and the rows with nothing."""
    if not live:
        return [], []
    settings = services.settings
    digests = digests_for(
        services,
        session,
        context,
        [s for _, s in live],
        delivery_ids=[d.id for d, _ in live],
    )
    jobs: list[_Job] = []
    empty: list[Delivery] = []
    for (delivery, subscriber), (digest, keys, links) in zip(live, digests, strict=True):
        if not digest.picks and not subscriber.nothing_new_note:
            empty.append(delivery)
            continue
        msg_id = message_id(
            edition_id=context.edition.id,
            subscriber_id=subscriber.id,
            domain=settings.email.message_id_domain,
            secret=settings.secret(),
        )
        if not digest.picks:
            raw = nothing_new.compose(
                services,
                subscriber=subscriber,
                links=links,
                msg_id=msg_id,
                edition_date=context.edition.edition_date,
                now=now,
            )
            jobs.append(_Job(delivery, subscriber, raw, [], msg_id, [], nothing_new.NOTE_REASON))
            continue
        raw = compose_message(
            services, subscriber=subscriber, digest=digest, links=links, msg_id=msg_id, now=now
        )
        shown = [{"id": key, "why": why, "kind": kind} for key, why, kind in digest.picks]
        jobs.append(_Job(delivery, subscriber, raw, keys, msg_id, shown))
    # The next digest of each of these readers starts where this one's papers were read.
    window_store.set_window_end(
        session,
        [job.delivery.id for job in jobs if not job.note],
        at=context.now or now,
    )
    return jobs, empty
