"""A sender's heartbeat: a thread that renews its row while the process lives.

A thread rather than a task: ranking or rendering a batch holds the event loop for a while,
and a missed beat must mean a dead process, never a busy one.
"""

from __future__ import annotations

import logging
import os
import threading

from sqlalchemy import Engine
from sqlmodel import Session

from digest.models import utcnow
from digest.store import senders

log = logging.getLogger(__name__)


class Heartbeat:
    """Registers `name` as a live sender, beats every `interval_s`, unregisters on stop."""

    def __init__(self, engine: Engine, *, name: str, interval_s: float) -> None:
        self.engine = engine
        self.name = name
        self.host = senders.this_host()
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        with Session(self.engine) as session:
            senders.register(session, name=self.name, host=self.host, pid=os.getpid(), now=utcnow())
        self._thread = threading.Thread(target=self._run, name="sender-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with Session(self.engine) as session:
            while not self._stop.wait(self.interval_s):
                try:
                    senders.beat(session, name=self.name, now=utcnow())
                except Exception as exc:  # the next beat retries; a long gap frees our claims
                    session.rollback()
                    log.warning("sender=%s heartbeat failed: %s", self.name, exc)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            with Session(self.engine) as session:
                senders.unregister(session, name=self.name)
        except Exception as exc:  # the row then just ages out
            log.warning("sender=%s could not unregister: %s", self.name, exc)
