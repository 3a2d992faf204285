"""The inbound SMTP server (aiosmtpd): mail for our addresses goes to usecases.inbound."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller

from digest.usecases import inbound

if TYPE_CHECKING:
    from digest.bootstrap import Services

log = logging.getLogger(__name__)


class InboundHandler:
    """aiosmtpd handler: accepts mail for our addresses only, processes it before answering."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, _o):
        if not inbound.is_ours(self.services, address):
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        peer = session.peer[0] if session.peer else "unknown"
        loop = asyncio.get_running_loop()
        try:
            # The database work and the replies block, so they run in a thread; answering only
            # afterwards means an accepted message has been acted on (C2: unsubscribe at 250).
            await loop.run_in_executor(
                None,
                lambda: inbound.handle(
                    self.services,
                    raw,
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    peer=peer,
                ),
            )
        except Exception:
            log.exception("inbound.failed")
            return "451 4.3.0 Temporary failure, try again later"
        return "250 2.0.0 OK"


class InboundServer:
    """Runs the inbound SMTP server in a background thread (a context manager)."""

    def __init__(self, services: Services, *, host: str | None = None, port: int | None = None):
        settings = services.settings.inbound
        self.host = host or settings.host
        self.port = port or settings.port
        self._controller = Controller(
            InboundHandler(services),
            hostname=self.host,
            port=self.port,
            server_hostname=services.settings.smtp.local_hostname,
            data_size_limit=settings.max_message_bytes,
            ready_timeout=10.0,
        )

    def __enter__(self) -> InboundServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def serve(
    services: Services,
    *,
    host: str | None = None,
    port: int | None = None,
    ready: Callable[[InboundServer], None] = lambda _server: None,
) -> None:
    """Run the inbound server until SIGTERM or Ctrl-C (call from the main thread).

    `ready` is called once it listens; OSError if it cannot listen.
    """
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with InboundServer(services, host=host, port=port) as server:
            ready(server)
            wait_forever(stop)
    except KeyboardInterrupt:
        pass


def wait_forever(stop: Any, poll_s: float = 0.5) -> None:
    """Block until `stop` (a threading.Event) is set; the CLI sets it on SIGTERM / Ctrl-C."""
    while not stop.wait(poll_s):
        pass
