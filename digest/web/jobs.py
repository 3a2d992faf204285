"""Work done after the response: confirmation mails, on a small thread pool.

Sending after the response keeps the subscribe page's timing the same whatever the address's
state (no DB lookups of the address, no SMTP, inside the request). The queue is bounded: past
`max_pending` jobs a flood is shed (logged) rather than piling up in memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

log = logging.getLogger(__name__)


class JobQueue:
    def __init__(self, workers: int, *, max_pending: int = 1000) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="digest-web-job")
        self._pending: set[Future[Any]] = set()
        self._lock = threading.Lock()
        self._max_pending = max_pending

    def submit(self, fn: Callable[..., Any], *args: Any) -> bool:
        with self._lock:
            if len(self._pending) >= self._max_pending:
                log.warning("jobs.shed pending=%d", len(self._pending))
                return False
            future = self._pool.submit(fn, *args)
            self._pending.add(future)
        future.add_done_callback(self._done)
        return True

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def drain(self, timeout: float | None = 30.0) -> None:
        """Wait for every job submitted so far (tests, and shutdown)."""
        with self._lock:
            pending = list(self._pending)
        wait(pending, timeout=timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
