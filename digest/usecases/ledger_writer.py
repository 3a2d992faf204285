"""Group commit for a send run: outcomes are written on one thread of their own, off the loop.

While one group commits, the outcomes that arrive meanwhile form the next group, so the cost
of a commit is shared by every connection instead of paid per message on the event loop. A
"sent" is only acknowledged once its group is durable; the sender waits for that before its
connection sends again, which keeps the crash bound at one unrecorded message per connection.

Recording outcomes is also how a live sender keeps its claims: after a group, at most every
third of the delivery lease, its open claims of the edition are stamped again. A batch that
outlives the lease (a slow relay) is then not claimed by another sender while this one still
sends it, which would send those digests twice; a sender that stops making progress stops
renewing, and its claims run out as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from typing import TYPE_CHECKING

from digest.store.outcomes import Outcome, OutcomeLedger

if TYPE_CHECKING:
    from digest.bootstrap import Services

log = logging.getLogger(__name__)


class LedgerWriter:
    """Writes a run's outcomes and reads subscriber statuses on a single database thread."""

    def __init__(
        self,
        services: Services,
        *,
        worker: str,
        edition_id: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.worker = worker
        # Renewal needs the edition and the clock the claims were stamped with.
        self._edition_id = edition_id
        self._clock = clock
        self._renew_every_s = services.settings.delivery.lease_s / 3
        self._renewed = time.monotonic()
        self.seconds = 0.0  # time spent writing, for the run's phase figures
        self.groups = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ledger")
        # A session for the whole run, committed group by group by the ledger.
        self._stack = ExitStack()
        self._ledger = OutcomeLedger(self._stack.enter_context(services.reading()), worker=worker)
        self._stack.callback(self._ledger.close)
        self._pending: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    def submit(self, outcome: Outcome) -> asyncio.Future[None]:
        """Queue an outcome; the future resolves once it is committed (or fails with the error)."""
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # only "sent" futures are awaited; flush() raises
        self._pending.append((outcome, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            group, self._pending = self._pending, []
            try:
                await loop.run_in_executor(self._executor, self._write, [o for o, _ in group])
            except BaseException as exc:  # every waiter learns the group is not durable
                self.error = self.error or exc
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for _, future in group:
                    if not future.done():
                        future.set_result(None)

    def _write(self, group: list[Outcome]) -> None:
        started = time.perf_counter()
        try:
            self._ledger.write(group)
            self._renew_if_due()
        finally:
            self.seconds += time.perf_counter() - started
            self.groups += 1

    def _renew_if_due(self) -> None:
        """Stamp the open claims again (module docstring). Best effort: the group before it is
        durable whatever happens here, and a failed renewal leaves the claims to their lease."""
        if self._edition_id is None or self._clock is None:
            return
        if time.monotonic() - self._renewed < self._renew_every_s:
            return
        self._renewed = time.monotonic()
        try:
            self._ledger.renew(self._edition_id, now=self._clock())
        except Exception:
            log.warning("claims.renew_failed worker=%s", self.worker, exc_info=True)

    async def statuses(self, subscriber_ids: Sequence[int]) -> dict[int, str]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._ledger.statuses, list(subscriber_ids)
        )

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed (errors are the waiters')."""
        while self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._stack.close)
            self._executor.shutdown(wait=True)


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
