"""Pacing the whole run: a message rate across connections, and a breaker for relay outages."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """At most `rate` message starts per second across every connection (0 = unlimited).

    Slots are handed out on a fixed grid, so bursts never exceed one message per interval.
    """

    def __init__(
        self,
        rate: float,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._sleep = sleep
        self._clock = clock

    async def acquire(self) -> None:
        if not self._interval:
            return
        now = self._clock()
        slot = max(self._next, now)
        self._next = slot + self._interval
        if slot > now:
            await self._sleep(slot - now)


class RelayBreaker:
    """Backs off the whole relay after failures to connect, so an outage costs no message.

    Each consecutive failure doubles the pause (with jitter) up to `max_s`; a success closes the
    breaker. After `give_up_s` of continuous failure the caller stops and releases its work.
    """

    def __init__(
        self,
        *,
        base_s: float,
        max_s: float,
        give_up_s: float,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base, self._max, self._give_up = base_s, max_s, give_up_s
        self._sleep, self._clock = sleep, clock
        self.failures = 0
        self.trips = 0
        self._open_until = 0.0
        self._down_since: float | None = None
        self._probing = False

    @property
    def gave_up(self) -> bool:
        return self._down_since is not None and (self._clock() - self._down_since >= self._give_up)

    def failure(self) -> None:
        now = self._clock()
        if now < self._open_until:
            return  # another connection already reported this outage
        self._probing = False
        self.failures += 1
        self.trips += 1
        if self._down_since is None:
            self._down_since = now
        delay = min(self._base * 2 ** (self.failures - 1), self._max)
        # Jitter only lengthens the pause: at the cap, never more than one probe per max_s.
        self._open_until = now + delay * random.uniform(1.0, 1.1)

    def success(self) -> None:
        self._probing = False
        self.failures = 0
        self._down_since = None
        self._open_until = 0.0

    async def wait(self) -> None:
        """Return when this caller may talk to the relay: closed, or the one half-open probe."""
        while True:
            pause = self._open_until - self._clock()
            if pause > 0:
                await self._sleep(pause)
                continue
            if self.failures == 0:
                return
            if not self._probing:
                # Half-open: one connection probes the relay; the others wait for its verdict.
                self._probing = True
                return
            await self._sleep(min(self._base, 0.05))
