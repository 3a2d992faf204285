"""A sender's heartbeat: a thread that renews its row while the process lives.

A thread rather than a task: ranking or rendering a batch holds the event loop for a while,
and a missed beat must mean a dead process, never a busy one.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from digest.store import senders

if TYPE_CHECKING:
    from digest.bootstrap import Services

log = logging.getLogger(__name__)


class Heartbeat:
    """Registers `name` as a live sender, beats every `interval_s`, unregisters on stop.

    Beats are stamped with `services.clock()`, the wall clock every sender compares them with,
    whatever simulated clock a send run uses.
    """

    def __init__(self, services: Services, *, name: str, interval_s: float) -> None:
        self.services = services
        self.name = name
        self.host = senders.this_host()
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        with self.services.reading() as tx:
            senders.register(
                tx, name=self.name, host=self.host, pid=os.getpid(), now=self.services.clock()
            )
        self._thread = threading.Thread(target=self._run, name="sender-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with self.services.reading() as tx:
            while not self._stop.wait(self.interval_s):
                try:
                    senders.beat(tx, name=self.name, now=self.services.clock())
                except Exception as exc:  # the next beat retries; a long gap frees our claims
                    tx.rollback()
                    log.warning("sender=%s heartbeat failed: %s", self.name, exc)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            with self.services.reading() as tx:
                senders.unregister(tx, name=self.name)
        except Exception as exc:  # the row then just ages out
            log.warning("sender=%s could not unregister: %s", self.name, exc)
