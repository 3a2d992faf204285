"""Claims and live senders: claim a batch (taking over dead senders' rows), wait for rows that
live senders hold, and say plainly what a run had to leave to them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from digest.models import Delivery
from digest.settings import DeliverySettings
from digest.store import deliveries as ledger
from digest.store import senders
from digest.store.uow import Tx


def claim_due(
    tx: Tx,
    *,
    edition_id: int,
    worker: str,
    now: datetime,
    wall_now: datetime,
    settings: DeliverySettings,
    after_id: int = 0,
) -> list[Delivery]:
    """Claim a batch; rows of senders that are no longer alive come first.

    `now` is the run's clock (due rows, claim stamps); heartbeats are compared with `wall_now`,
    the wall clock every sender beats with, whatever clock the run uses.
    """
    takeable = senders.takeable(
        tx,
        edition_id=edition_id,
        me=worker,
        host=senders.this_host(),
        now=wall_now,
        ttl_s=settings.heartbeat_ttl_s,
    )
    return ledger.claim_batch(
        tx,
        edition_id=edition_id,
        worker=worker,
        limit=settings.batch_size,
        now=now,
        lease_s=settings.lease_s,
        takeable=takeable,
        after_id=after_id,
    )


async def wait_for_others(
    tx: Tx,
    *,
    edition_id: int,
    worker: str,
    wall_clock: Callable[[], datetime],
    settings: DeliverySettings,
    budget_s: float,
    keep_going: Callable[[], bool],
    send_more: Callable[[], Awaitable[None]],
    sleep: Callable[[float], Awaitable[None]],
) -> senders.HeldClaims:
    """Wait up to `budget_s` while other live senders hold rows of this edition; whenever one
    of them dies meanwhile, `send_more` takes its rows over. Returns what is still held."""
    deadline = time.monotonic() + budget_s
    held = senders.HeldClaims(0, (), None)
    while keep_going():
        others = senders.holders(tx, edition_id)
        others.pop(worker, None)
        held = senders.held_by_others(
            tx,
            edition_id=edition_id,
            me=worker,
            host=senders.this_host(),
            now=wall_clock(),
            ttl_s=settings.heartbeat_ttl_s,
        )
        tx.commit()
        if not others or time.monotonic() >= deadline:
            break
        if held.count < sum(others.values()):
            await send_more()  # a holder died: take its rows over now
        await sleep(min(settings.heartbeat_s, 0.5))
    return held


def held_claims_message(report: object) -> str:
    """One line for an operator: how many rows live senders still hold, and until when."""
    held = getattr(report, "claims_held", 0)
    holders = ", ".join(getattr(report, "claims_held_by", ()))
    until: datetime | None = getattr(report, "claims_held_until", None)
    when = until.astimezone(UTC).strftime("%H:%M:%S UTC") if until else "later"
    return (
        f"{held} subscriber{'s' if held != 1 else ''} not sent yet: claimed by a live sender "
        f"({holders}); they are taken over at {when} if it stops, or run `digest send` again"
    )
