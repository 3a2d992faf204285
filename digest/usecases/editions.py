"""Use case: plan an edition, then claim, rank, render, send and record its deliveries.

The Delivery ledger is the only record of what was sent. A batch of rows is claimed, ranked and
rendered together (send_batches.py); subscribers are re-checked just before their messages go
out and outcomes are committed in groups off the event loop (send_run.py, ledger_writer.py),
each connection waiting for its last "sent" to be durable before it sends again. Claims belong
to a live sender (heartbeat.py): a crash leaves claimed rows that the next run takes over at
once when the process is gone, with the same Message-ID (at-least-once, duplicates bounded by
the number of connections).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import TYPE_CHECKING

from digest import timetable
from digest.models import Edition
from digest.store import deliveries as ledger
from digest.store import editions as edition_store
from digest.store import subscribers as subscriber_store
from digest.usecases import edition_states, takeover

# Re-exported: the web app, previews and tests build digests through here.
from digest.usecases.digests import (
    EditionContext,
    compose_message,
    digests_for,
    edition_context,
)
from digest.usecases.heartbeat import Heartbeat
from digest.usecases.send_batches import send_batches
from digest.usecases.send_report import SendReport
from digest.usecases.send_run import SendRun

if TYPE_CHECKING:
    from digest.bootstrap import Services

__all__ = [
    "EditionContext",
    "SendReport",
    "compose_message",
    "default_worker_name",
    "digests_for",
    "edition_context",
    "plan_edition",
    "send_edition",
]


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
    with services.reading() as tx:
        edition, _ = edition_store.get_or_create_edition(
            tx, edition_date=edition_date, send_by=send_by
        )
        subscribers = subscriber_store.active_subscribers(tx)
        if due_only:
            subscribers = [
                s for s in subscribers if timetable.due_in_window(s, start=start, now=now)
            ]
        planned = ledger.plan_deliveries(
            tx, edition_id=edition.id, subscriber_ids=[s.id for s in subscribers]
        )
        tx.commit()
        if edition.status != "held":
            edition_states.refresh(tx, edition)
        return edition, planned


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
    clock: Callable[[], datetime] | None = None,
    should_stop: Callable[[], bool] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    wait_for_retries: bool = False,
    wait_for_others_s: float = 0.0,
) -> SendReport:
    """Send every due row of this edition; returns counts. Never sends a 'sent' row again.

    `clock` (the services' clock unless given) stamps claims and outcomes; heartbeats always
    use the services' clock. `wait_for_retries` keeps the run going until deferred rows are
    sent or out of attempts (tests and one-shot sends); the worker instead comes back every
    minute. Rows that other live senders hold are waited for up to `wait_for_others_s` (taken
    over if their sender dies meanwhile); what is still held then is in the report's
    `claims_held`.
    """
    started = time.perf_counter()
    clock = clock or services.clock
    with services.reading() as tx:
        run = SendRun(
            services,
            tx,
            edition,
            worker=worker or default_worker_name(),
            clock=clock,
            sleep=sleep,
            should_stop=should_stop or (lambda: False),
            progress=progress,
        )
        try:
            await _run(
                run,
                now=now or clock(),
                dry_run=dry_run,
                wait_for_retries=wait_for_retries,
                wait_for_others_s=wait_for_others_s,
            )
        finally:
            try:
                await run.writer.close()
            finally:
                # After the writer's last group: the state counts every recorded outcome.
                run.report.status = edition_states.refresh(tx, edition)
                run.report.seconds = time.perf_counter() - started
                run.report.phases["record"] = run.writer.seconds
    return run.report


async def _run(
    run: SendRun, *, now: datetime, dry_run: bool, wait_for_retries: bool, wait_for_others_s: float
) -> None:
    services, tx, edition, report = run.services, run.tx, run.edition, run.report
    if edition.send_by is not None and now > edition.send_by:
        report.expired = ledger.expire_open(tx, edition.id)
        return
    if dry_run:
        counts = ledger.state_counts(tx, edition.id)
        report.planned = sum(counts.get(state, 0) for state in ledger.OPEN_STATES)
        return
    start, _ = timetable.edition_window(
        edition.edition_date, services.settings.scheduler.edition_hour
    )
    report.held = edition_states.check_hold(tx, services.settings, edition, since=start)
    if report.held:
        return
    interval = services.settings.delivery.heartbeat_s
    with Heartbeat(services, name=run.worker, interval_s=interval):
        await send_batches(run, now=now, wait_for_retries=wait_for_retries)
        held = await takeover.wait_for_others(
            tx,
            edition_id=edition.id,
            worker=run.worker,
            wall_clock=services.clock,
            settings=services.settings.delivery,
            budget_s=wait_for_others_s,
            keep_going=lambda: not (run.should_stop() or report.paused or report.relay_down),
            send_more=lambda: send_batches(run, now=now, wait_for_retries=False),
            sleep=run.sleep,
        )
        report.claims_held, report.claims_held_by, report.claims_held_until = (
            held.count,
            held.holders,
            held.free_by,
        )
    ledger.release_claims(tx, edition_id=edition.id, worker=run.worker)
