"""Claiming and preparing: claim a batch of due rows, skip who left, rank and render the rest
at once, and hand the messages to the run's connections; until nothing is left to claim."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

from digest.models import Delivery, Subscriber
from digest.render import message_id
from digest.store import deliveries as ledger
from digest.store import windows as window_store
from digest.store.uow import Tx
from digest.usecases import bounces, nothing_new, takeover
from digest.usecases.digests import EditionContext, compose_message, digests_for, edition_context
from digest.usecases.send_run import Job, SendRun

if TYPE_CHECKING:
    from digest.bootstrap import Services


def _timed(run: SendRun, phase: str, started: float) -> float:
    now = time.perf_counter()
    run.report.phases[phase] = run.report.phases.get(phase, 0.0) + now - started
    return now


async def send_batches(run: SendRun, *, now: datetime, wait_for_retries: bool) -> None:
    """Claim, prepare and send batch after batch until none is left, a stop or a pause."""
    services, tx, clock = run.services, run.tx, run.clock
    context = edition_context(services, tx, run.edition, now=now)
    while not run.should_stop():
        # A complaint-rate pause (bounces.py) stops the edition until an operator resumes.
        if bounces.sending_paused(tx):
            run.report.paused = True
            break
        mark = time.perf_counter()
        batch = takeover.claim_due(
            tx,
            edition_id=run.edition.id,
            worker=run.worker,
            now=clock(),
            wall_now=services.clock(),
            settings=services.settings.delivery,
            after_id=run.cursor,
        )
        if not batch:
            wake_at = ledger.next_retry_at(tx, run.edition.id) if wait_for_retries else None
            if wake_at is None:
                break
            await run.sleep(max((wake_at - clock()).total_seconds(), 0.0) + 0.01)
            continue
        run.cursor = max(run.cursor, batch[-1].id)
        subscribers = ledger.subscribers_of(tx, [d.subscriber_id for d in batch])
        live = []
        for delivery in batch:
            subscriber = subscribers.get(delivery.subscriber_id)
            if subscriber is None or subscriber.status != "active":
                run.skip(delivery)
            else:
                live.append((delivery, subscriber))
        mark = _timed(run, "claim", mark)
        jobs, empty = jobs_for(services, tx, context, live, now=clock(), phases=run.report.phases)
        for delivery in empty:
            run.skip(delivery, nothing_new.REASON)
            run.report.nothing_new += 1
        mark = time.perf_counter()
        await run.send_all(jobs)
        _timed(run, "send", mark)
        if run.should_stop() or run.breaker.gave_up:
            run.report.relay_down = run.breaker.gave_up
            break


def jobs_for(
    services: Services,
    tx: Tx,
    context: EditionContext,
    live: list[tuple[Delivery, Subscriber]],
    *,
    now: datetime,
    phases: dict[str, float],
) -> tuple[list[Job], list[Delivery]]:
    """Rank and render a claimed batch at once: one message per delivery whose window holds
    something new (or a "nothing new" note for those who asked), and the rows with nothing."""
    if not live:
        return [], []
    settings = services.settings
    digests = digests_for(
        services,
        tx,
        context,
        [s for _, s in live],
        delivery_ids=[d.id for d, _ in live],
        phases=phases,
    )
    started = time.perf_counter()
    jobs: list[Job] = []
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
            jobs.append(Job(delivery, subscriber, raw, [], msg_id, [], nothing_new.NOTE_REASON))
            continue
        raw = compose_message(
            services, subscriber=subscriber, digest=digest, links=links, msg_id=msg_id, now=now
        )
        shown = [{"id": key, "why": why, "kind": kind} for key, why, kind in digest.picks]
        jobs.append(Job(delivery, subscriber, raw, keys, msg_id, shown))
    phases["render"] = phases.get("render", 0.0) + time.perf_counter() - started
    # The next digest of each of these readers starts where this one's papers were read.
    window_store.set_window_end(
        tx,
        [job.delivery.id for job in jobs if not job.note],
        at=context.now or now,
    )
    return jobs, empty
