"""The relay under faults, with the default backoff settings in real time (RELIABILITY S5).

A relay that is down gets few connection attempts (counted at the relay, not as breaker
trips): at most 10 in the first minute, then no more than one per 30 s; when it is back,
sending resumes at once on every connection without a storm of reconnections. A 421 on one
session pauses that connection only.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from digest.settings import SmtpSettings
from digest.usecases.editions import plan_edition, send_edition
from tests.smtp_faults import FaultPlan, FaultyHandler, FaultySink
from tests.test_delivery import NOW, _build


class DownRelay:
    """Listens on the relay's port and greets every connection with 421: counts attempts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.attempts: list[float] = []
        self._socket = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._socket.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.attempts.append(time.monotonic())
            client.sendall(b"421 4.3.2 relay down for maintenance\r\n")
            client.close()

    def __enter__(self) -> DownRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


@pytest.mark.slow
def test_a_relay_down_for_a_minute_gets_few_attempts_and_resumes_without_a_storm(
    sqlite_url: str,
) -> None:
    sink = FaultySink(FaultyHandler())  # the relay once it is back
    defaults = SmtpSettings()  # the shipped backoff, uncompressed
    services = _build(
        sqlite_url,
        sink,
        20,
        relay_backoff_base_s=defaults.relay_backoff_base_s,
        relay_backoff_max_s=defaults.relay_backoff_max_s,
    )
    smtp = services.settings.smtp
    down = DownRelay(sink.port).__enter__()
    back_after_s = 40.0

    async def restore() -> float:
        await asyncio.sleep(back_after_s)
        down.stop()
        sink.start()
        return time.monotonic()

    async def scenario():
        edition, _ = plan_edition(services, edition_date=NOW.date(), now=NOW)
        return await asyncio.gather(send_edition(services, edition, now=NOW), restore())

    started = time.monotonic()
    try:
        report, restored_at = asyncio.run(scenario())
    finally:
        sink.stop()

    accepted = sorted(t for _, _, t in sink.handler.accepted)
    attempts = [t - started for t in down.attempts]
    first_minute = [t for t in attempts if t < 60]
    assert report.sent == 20 and report.failed == 0 and not report.relay_down
    assert set(sink.handler.recipients().values()) == {1}
    assert smtp.connections <= len(first_minute) <= 10, attempts
    # The probes space out, up to 30 s apart: the one that found the relay back came at least
    # 30 s after the last refused one (and it came no later than the cap allows).
    assert 30.0 <= accepted[0] - down.attempts[-1] <= 30.0 * 1.1 + 1, (attempts, accepted[0])
    assert accepted[0] - restored_at <= 30.0 * 1.1 + 1
    # Back: every message out within 5 s of the first, no more connections than configured.
    assert accepted[-1] - accepted[0] <= 5.0
    assert sink.handler.connections <= smtp.connections


def test_a_421_on_one_session_pauses_that_connection_only(sqlite_url: str) -> None:
    """Before: each 421 paused every connection for the relay backoff (here 3 s)."""
    with FaultySink(FaultyHandler()) as sink:
        sink.handler.plan = FaultPlan(
            once_by_recipient={"reader0000@example.com": "421 4.7.0 Too many messages"}
        )
        services = _build(sqlite_url, sink, 40, relay_backoff_base_s=3.0, max_rate_per_s=100.0)
        edition, _ = plan_edition(services, edition_date=NOW.date(), now=NOW)
        started = time.monotonic()

        report = asyncio.run(send_edition(services, edition, now=NOW))

        elapsed = time.monotonic() - started
        times = sorted(t for _, _, t in sink.handler.accepted)
    assert report.sent == 40 and report.relay_trips == 0
    assert set(sink.handler.recipients().values()) == {1}
    # 40 messages at 100/s on the other connections: no 3 s stall anywhere.
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) < 1.0
    assert elapsed < 3.0, elapsed
