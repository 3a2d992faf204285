"""One connection's own pause after its session was closed on it (421, dropped).

A relay that closes one session (too many messages on it, a restart of one of its
processes) is not down: the other connections keep sending while this one waits, doubling
its pause per consecutive failure. Failures to connect at all go to the shared RelayBreaker.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class ConnectionPause:
    def __init__(
        self, *, base_s: float, max_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._base, self._max, self._clock = base_s, max_s, clock
        self.failures = 0
        self._until = 0.0

    def failure(self) -> None:
        self.failures += 1
        delay = min(self._base * 2 ** (self.failures - 1), self._max)
        self._until = self._clock() + delay * random.uniform(1.0, 1.1)

    def success(self) -> None:
        self.failures = 0
        self._until = 0.0

    def remaining(self) -> float:
        return max(self._until - self._clock(), 0.0)
