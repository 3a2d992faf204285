"""Use case: plan an edition, then claim, rank, render, send and record its deliveries.

The Delivery ledger is the only record of what was sent. A batch of rows is claimed, ranked and
rendered together; subscribers are re-checked just before their messages go out and outcomes
are committed in groups off the event loop (ledger_writer.py), each connection waiting for its
last "sent" to be durable before it sends again. Claims belong to a live sender (heartbeat.py):
a crash leaves claimed rows that the next run takes over at once when the process is gone,
with the same Message-ID (at-least-once, duplicates bounded by the number of connections).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session

from digest import timetable
from digest.bootstrap import Services
from digest.mailer import RateLimiter, RelayBreaker, SendOutcome
from digest.models import Delivery, Edition, Subscriber, utcnow
from digest.render import message_id
from digest.store import deliveries as ledger
from digest.store import subscribers as subscriber_store
from digest.store import windows as window_store
from digest.store.outcomes import Outcome
from digest.usecases import bounces, edition_states, nothing_new, takeover

# Re-exported: the web app and previews build digests through here.
from digest.usecases.digests import (
    EditionContext,
    compose_message,
    digests_for,
    edition_context,
)
from digest.usecases.heartbeat import Heartbeat
from digest.usecases.ledger_writer import LedgerWriter
from digest.usecases.send_pause import ConnectionPause
from digest.usecases.send_queue import SendQueue

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
    # Rows other live senders still held when this run ended, and when they fall free.
    claims_held: int = 0
    claims_held_by: tuple[str, ...] = ()
    claims_held_until: datetime | None = None
    # Seconds per phase (claim, rank, render, send, record); record overlaps send.
    phases: dict[str, float] = field(default_factory=dict)

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

    @property
    def subscriber_id(self) -> int:
        return self.subscriber.id


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
        self.cursor = 0  # the highest row id claimed so far (see ledger.claim_batch)
        self.session = Session(services.engine, expire_on_commit=False)
        self.writer = LedgerWriter(services, worker=worker)
        self.limiter = RateLimiter(smtp.max_rate_per_s, sleep=sleep)
        self.breaker = RelayBreaker(
            base_s=smtp.relay_backoff_base_s,
            max_s=smtp.relay_backoff_max_s,
            give_up_s=smtp.relay_give_up_s,
            sleep=sleep,
        )

    def record(self, job: _Job, outcome: SendOutcome) -> asyncio.Future[None]:
        """Queue the outcome for the next group commit; the future says when it is durable."""
        settings = self.services.settings
        now = self.clock()
        report = self.report
        common = dict(
            now=now, message_id=job.message_id, smtp_code=outcome.code, smtp_text=outcome.text
        )
        attempts = job.delivery.attempts + 1
        if outcome.kind == "sent":
            # A "nothing new" note is recorded as sent with its reason, in the same group.
            row = Outcome(
                job.delivery.id,
                "sent",
                paper_keys=job.keys,
                picks=job.picks,
                reason=job.note[:200] if job.note else None,
                **common,
            )
            report.sent += 1
            report.notes += bool(job.note)
        elif outcome.kind == "deferred" and attempts < settings.delivery.max_attempts:
            retry_at = _retry_at(settings.delivery.backoff_base_s, attempts, now)
            row = Outcome(job.delivery.id, "deferred", next_attempt_at=retry_at, **common)
            report.deferred += 1
        else:
            bounced = outcome.hard_bounce
            row = Outcome(
                job.delivery.id,
                "failed",
                suppress_email=job.subscriber.email if bounced else None,
                subscriber_id=job.subscriber.id,
                **common,
            )
            report.failed += 1
            report.suppressed += bounced
        if self.progress:
            self.progress(1)
        return self.writer.submit(row)

    def skip(self, delivery: Delivery, reason: str | None = None) -> None:
        reason = reason[:200] if reason else None
        self.writer.submit(Outcome(delivery.id, "skipped", now=self.clock(), reason=reason))
        self.report.skipped += 1
        if self.progress:
            self.progress(1)

    async def send_all(self, jobs: list[_Job]) -> None:
        """Send jobs over several reused connections; a relay outage requeues, never fails."""
        queue = SendQueue(jobs, self.writer.statuses)
        settings = self.services.settings
        # Bounces go to the bounce address (handled by `digest inbound`), not to the From.
        sender = settings.inbound.bounce_address or settings.email.from_address

        async def one_connection() -> None:
            smtp = self.services.settings.smtp
            connection = self.services.smtp_connection()
            pause = ConnectionPause(
                base_s=smtp.relay_backoff_base_s, max_s=smtp.relay_backoff_max_s
            )
            # The last message this connection got accepted, until its record is durable:
            # waited for before the next one goes, so a crash leaves at most one per connection.
            unrecorded: asyncio.Future[None] | None = None
            try:
                while True:
                    if self.should_stop() or self.breaker.gave_up:
                        return
                    if pause.remaining():
                        if not len(queue):
                            return  # nothing left for this connection to wait for
                        await self.sleep(min(pause.remaining(), 0.05))
                        continue
                    item = await queue.next()
                    if item is None:
                        return
                    job, active = item
                    if not active:
                        self.skip(job.delivery)
                        continue
                    await self.breaker.wait()
                    await self.limiter.acquire()
                    if unrecorded is not None:
                        await unrecorded
                        unrecorded = None
                    outcome = await connection.send(
                        sender=sender, recipient=job.subscriber.email, message=job.message
                    )
                    if outcome.kind == "relay":
                        # Refused at connect: the relay is down, everyone backs off. A session
                        # closed on us (421, dropped): this connection pauses, the others go on.
                        if outcome.connecting:
                            self.breaker.failure()
                        else:
                            pause.failure()
                        queue.requeue(job)
                        continue
                    self.breaker.success()
                    pause.success()
                    recorded = self.record(job, outcome)
                    if outcome.kind == "sent":
                        unrecorded = recorded
            finally:
                await connection.close()

        width = min(self.services.settings.smtp.connections, max(len(jobs), 1))
        await asyncio.gather(*(one_connection() for _ in range(width)))
        await self.writer.flush()
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
    wait_for_others_s: float = 0.0,
) -> SendReport:
    """Send every due row of this edition; returns counts. Never sends a 'sent' row again.

    `wait_for_retries` keeps the run going until deferred rows are sent or out of attempts
    (tests and one-shot sends); the worker instead comes back every minute. Rows that other
    live senders hold are waited for up to `wait_for_others_s` (taken over if their sender
    dies meanwhile); what is still held then is in the report's `claims_held`.
    """
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
    try:
        if edition.send_by is not None and now > edition.send_by:
            run.report.expired = ledger.expire_open(run.session, edition.id)
            return run.report
        if dry_run:
            counts = ledger.state_counts(run.session, edition.id)
            run.report.planned = sum(counts.get(state, 0) for state in ledger.OPEN_STATES)
            return run.report
        start, _ = timetable.edition_window(
            edition.edition_date, services.settings.scheduler.edition_hour
        )
        run.report.held = edition_states.check_hold(
            run.session, services.settings, edition, since=start
        )
        if run.report.held:
            return run.report
        interval = services.settings.delivery.heartbeat_s
        with Heartbeat(services.engine, name=run.worker, interval_s=interval):
            await _send_batches(run, now=now, wait_for_retries=wait_for_retries)
            report = run.report
            held = await takeover.wait_for_others(
                run.session,
                edition_id=edition.id,
                worker=run.worker,
                settings=services.settings.delivery,
                budget_s=wait_for_others_s,
                keep_going=lambda: not (run.should_stop() or report.paused or report.relay_down),
                send_more=lambda: _send_batches(run, now=now, wait_for_retries=False),
                sleep=sleep,
            )
            report.claims_held, report.claims_held_by, report.claims_held_until = (
                held.count,
                held.holders,
                held.free_by,
            )
        run.release_claims()
    finally:
        try:
            await run.writer.close()
        finally:
            try:
                # After the writer's last group: the state counts every recorded outcome.
                run.report.status = edition_states.refresh(run.session, edition)
            finally:
                run.session.close()
                run.report.seconds = time.perf_counter() - started
                run.report.phases["record"] = run.writer.seconds
    return run.report


def _timed(run: _Run, phase: str, started: float) -> float:
    now = time.perf_counter()
    run.report.phases[phase] = run.report.phases.get(phase, 0.0) + now - started
    return now


async def _send_batches(run: _Run, *, now: datetime, wait_for_retries: bool) -> None:
    services, session, clock = run.services, run.session, run.clock
    context = edition_context(services, session, run.edition, now=now)
    while not run.should_stop():
        # A complaint-rate pause (bounces.py) stops the edition until an operator resumes.
        if bounces.sending_paused(session):
            run.report.paused = True
            break
        mark = time.perf_counter()
        batch = takeover.claim_due(
            session,
            edition_id=run.edition.id,
            worker=run.worker,
            now=clock(),
            settings=services.settings.delivery,
            after_id=run.cursor,
        )
        if not batch:
            wake_at = ledger.next_retry_at(session, run.edition.id) if wait_for_retries else None
            if wake_at is None:
                break
            await run.sleep(max((wake_at - clock()).total_seconds(), 0.0) + 0.01)
            continue
        run.cursor = max(run.cursor, batch[-1].id)
        subscribers = ledger.subscribers_of(session, [d.subscriber_id for d in batch])
        live = []
        for delivery in batch:
            subscriber = subscribers.get(delivery.subscriber_id)
            if subscriber is None or subscriber.status != "active":
                run.skip(delivery)
            else:
                live.append((delivery, subscriber))
        mark = _timed(run, "claim", mark)
        jobs, empty = _jobs(services, session, context, live, now=clock(), phases=run.report.phases)
        for delivery in empty:
            run.skip(delivery, nothing_new.REASON)
            run.report.nothing_new += 1
        mark = time.perf_counter()
        await run.send_all(jobs)
        _timed(run, "send", mark)
        if run.should_stop() or run.breaker.gave_up:
            run.report.relay_down = run.breaker.gave_up
            break


def _jobs(
    services: Services,
    session: Session,
    context: EditionContext,
    live: list[tuple[Delivery, Subscriber]],
    *,
    now: datetime,
    phases: dict[str, float],
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
        phases=phases,
    )
    started = time.perf_counter()
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
    phases["render"] = phases.get("render", 0.0) + time.perf_counter() - started
    # The next digest of each of these readers starts where this one's papers were read.
    window_store.set_window_end(
        session,
        [job.delivery.id for job in jobs if not job.note],
        at=context.now or now,
    )
    return jobs, empty
