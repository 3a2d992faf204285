"""The jobs of one claimed batch, handed to the connections with a fresh still-active check.

An unsubscribe that lands mid-edition must win, so each message's subscriber is checked just
before it goes out; the check is one query for the next `chunk` jobs instead of one per
message, and a verdict older than `max_age_s` (a requeued job, a relay pause) is read again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from itertools import islice
from typing import Generic, Protocol, TypeVar


class HasSubscriber(Protocol):
    @property
    def subscriber_id(self) -> int: ...


J = TypeVar("J", bound=HasSubscriber)
StatusReader = Callable[[Sequence[int]], Awaitable[dict[int, str]]]


class SendQueue(Generic[J]):
    def __init__(
        self,
        jobs: Iterable[J],
        read_statuses: StatusReader,
        *,
        chunk: int = 64,
        max_age_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jobs: deque[J] = deque(jobs)
        self._read = read_statuses
        self._chunk = chunk
        self._max_age = max_age_s
        self._clock = clock
        self._verdicts: dict[int, tuple[float, bool]] = {}
        self._reading: dict[int, asyncio.Future[None]] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def requeue(self, job: J) -> None:
        self._verdicts.pop(job.subscriber_id, None)
        self._jobs.append(job)

    async def next(self) -> tuple[J, bool] | None:
        """The next job and whether its subscriber is still active, or None when none is left."""
        if not self._jobs:
            return None
        job = self._jobs.popleft()
        key = job.subscriber_id
        while True:
            verdict = self._verdicts.get(key)
            if verdict is not None and self._clock() - verdict[0] <= self._max_age:
                del self._verdicts[key]
                return job, verdict[1]
            reading = self._reading.get(key)
            if reading is not None:
                await reading
                continue
            await self._check([key, *(j.subscriber_id for j in islice(self._jobs, self._chunk))])

    async def _check(self, ids: list[int]) -> None:
        ids = [i for i in dict.fromkeys(ids) if i not in self._reading]
        future = asyncio.get_running_loop().create_future()
        for i in ids:
            self._reading[i] = future
        try:
            statuses = await self._read(ids)
            at = self._clock()
            for i in ids:
                self._verdicts[i] = (at, statuses.get(i) == "active")
        finally:
            for i in ids:
                self._reading.pop(i, None)
            future.set_result(None)
