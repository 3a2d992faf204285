"""Group commit for a send run: outcomes are written on one thread of their own, off the loop.

While one group commits, the outcomes that arrive meanwhile form the next group, so the cost
of a commit is shared by every connection instead of paid per message on the event loop. A
"sent" is only acknowledged once its group is durable; the sender waits for that before its
connection sends again, which keeps the crash bound at one unrecorded message per connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from digest.store import outcomes as outcome_store
from digest.store.outcomes import Outcome


class LedgerWriter:
    """Writes a run's outcomes and reads subscriber statuses on a single database thread."""

    def __init__(self, engine: Engine, *, worker: str) -> None:
        self.worker = worker
        self.seconds = 0.0  # time spent writing, for the run's phase figures
        self.groups = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ledger")
        self._session = Session(engine, expire_on_commit=False)
        # PostgreSQL: groups of "sent" rows go as one statement on a connection of their own
        # in autocommit, with the commit durability of store/outcomes.record.
        self._autocommit: Any = None
        if engine.dialect.name == "postgresql":
            self._autocommit = psycopg_autocommit(engine)
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
            if self._autocommit is not None and all(o.state == "sent" for o in group):
                outcome_store.record_sent_postgres(self._autocommit, group, self.worker)
            else:
                outcome_store.record(self._session, group, worker=self.worker)
        except BaseException:
            self._session.rollback()
            raise
        finally:
            self.seconds += time.perf_counter() - started
            self.groups += 1

    async def statuses(self, subscriber_ids: Sequence[int]) -> dict[int, str]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, outcome_store.statuses, self._session, list(subscriber_ids)
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
            await loop.run_in_executor(self._executor, self._close)
            self._executor.shutdown(wait=True)

    def _close(self) -> None:
        self._session.close()
        if self._autocommit is not None:
            self._autocommit.close()


def psycopg_autocommit(engine: Engine) -> Any:
    """A psycopg connection of its own (not the pool's: its settings must not leak)."""
    import psycopg

    url = engine.url.set(drivername="postgresql")
    query = dict(url.query)
    options = query.pop("options", None)
    plain = url.set(query=query).render_as_string(hide_password=False)
    connection = psycopg.connect(
        plain, autocommit=True, **({"options": options} if options else {})
    )
    connection.execute("SET synchronous_commit = off")
    return connection


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
