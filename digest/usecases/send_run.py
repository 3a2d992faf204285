"""One send run's connections: each message goes out over a reused SMTP connection and its
outcome is queued for the ledger writer's next group commit.

A relay outage requeues (never fails) a message; each connection waits for its last "sent" to
be durable before it sends again, so a crash leaves at most one unrecorded message per
connection.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from digest.mailer import RateLimiter, RelayBreaker, SendOutcome
from digest.models import Delivery, Edition, Subscriber
from digest.store.outcomes import Outcome
from digest.store.uow import Tx
from digest.usecases.ledger_writer import LedgerWriter
from digest.usecases.send_pause import ConnectionPause
from digest.usecases.send_queue import SendQueue
from digest.usecases.send_report import SendReport

if TYPE_CHECKING:
    from digest.bootstrap import Services


@dataclass
class Job:
    """One message ready to go: its ledger row, recipient, bytes and what it shows."""

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


class SendRun:
    """One send run's shared state: its unit of work, counters and the relay's health."""

    def __init__(
        self,
        services: Services,
        tx: Tx,
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
        self.tx = tx
        self.edition = edition
        self.worker = worker
        self.clock = clock
        self.sleep = sleep
        self.should_stop = should_stop
        self.progress = progress
        self.report = SendReport()
        self.cursor = 0  # the highest row id claimed so far (see ledger.claim_batch)
        self.writer = LedgerWriter(services, worker=worker, edition_id=edition.id, clock=clock)
        self.limiter = RateLimiter(smtp.max_rate_per_s, sleep=sleep)
        self.breaker = RelayBreaker(
            base_s=smtp.relay_backoff_base_s,
            max_s=smtp.relay_backoff_max_s,
            give_up_s=smtp.relay_give_up_s,
            sleep=sleep,
        )

    def record(self, job: Job, outcome: SendOutcome) -> asyncio.Future[None]:
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
            retry_at = retry_time(settings.delivery.backoff_base_s, attempts, now)
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

    async def send_all(self, jobs: list[Job]) -> None:
        """Send jobs over several reused connections; a relay outage requeues, never fails."""
        queue = SendQueue(jobs, self.writer.statuses)
        settings = self.services.settings
        # Bounces go to the bounce address (handled by `digest inbound`), not to the From.
        sender = settings.inbound.bounce_address or settings.email.from_address
        width = min(settings.smtp.connections, max(len(jobs), 1))
        await asyncio.gather(*(self._one_connection(queue, sender) for _ in range(width)))
        await self.writer.flush()
        self.report.relay_trips = self.breaker.trips

    async def _one_connection(self, queue: SendQueue[Job], sender: str) -> None:
        smtp = self.services.settings.smtp
        connection = self.services.smtp_connection()
        pause = ConnectionPause(base_s=smtp.relay_backoff_base_s, max_s=smtp.relay_backoff_max_s)
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


def retry_time(base_s: float, attempts: int, now: datetime) -> datetime:
    """When a deferred message is tried again: exponential backoff with jitter."""
    delay = base_s * (2 ** max(attempts - 1, 0)) * random.uniform(0.8, 1.2)
    return now + timedelta(seconds=delay)
