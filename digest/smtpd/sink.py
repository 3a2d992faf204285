"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives: for the demo and tests."""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    """One accepted message: envelope and the raw bytes as the client sent them."""

    sender: str
    recipients: list[str]
    data: bytes
    path: Path | None = None


@dataclass
class SinkHandler:
    """aiosmtpd handler storing every message in memory and, with `out_dir`, as .eml files."""

    out_dir: Path | None = None
    messages: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        with self._lock:
            number = len(self.messages) + 1
            path = None
            if self.out_dir is not None:
                # Continue the folder's numbering so a later run never overwrites a message.
                number = len(list(self.out_dir.glob("*.eml"))) + 1
                who = re.sub(r"[^A-Za-z0-9._-]+", "_", envelope.rcpt_tos[0])[:60]
                path = self.out_dir / f"{number:03d}-{who}.eml"
                path.write_bytes(data)
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), data, path))
        return "250 2.0.0 OK: queued"


class SmtpSink:
    """Starts and stops an aiosmtpd server on 127.0.0.1 in a background thread."""

    def __init__(self, handler: SinkHandler, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self.host = host
        self.port = port or free_port(host)
        self._controller = Controller(
            handler,
            hostname=host,
            port=self.port,
            server_hostname="sink.localhost",
            data_size_limit=10 * 1024 * 1024,
        )

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages
