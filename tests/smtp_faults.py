"""A real aiosmtpd server on loopback with a programmable fault plan, for the delivery tests.

It answers per recipient or at random per attempt (451/450/550/552), drops sessions with 421,
can lose the acknowledgement of an accepted message (keeps it, then answers too late), can be
stopped and restarted on the same port (relay outage), and counts what happened: connections,
RCPT attempts, accepted messages by Message-ID, lost acknowledgements, concurrent sessions.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from digest.smtpd.sink import free_port

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>]+>)", re.M | re.I)


@dataclass
class FaultPlan:
    by_recipient: dict[str, str] = field(default_factory=dict)
    random_rcpt: list[tuple[float, str]] = field(default_factory=list)
    drop_session_rate: float = 0.0
    # After the message is stored, wait this long before the 250 (past the client's timeout).
    lost_ack_rate: float = 0.0
    lost_ack_delay_s: float = 0.0
    seed: int = 1
    # Pipelining tests (test_mailer_pipelining.py): advertise PIPELINING (RFC 2920; aiosmtpd
    # answers pipelined commands in order but does not say so), and answer MAIL FROM per
    # sender ("421 ..." also closes the session).
    pipelining: bool = False
    by_sender: dict[str, str] = field(default_factory=dict)
    # Answered once to that recipient's RCPT ("421 ..." then closes the session), then accepted.
    once_by_recipient: dict[str, str] = field(default_factory=dict)


@dataclass
class FaultyHandler:
    plan: FaultPlan = field(default_factory=FaultPlan)
    connections: int = 0
    rcpt_attempts: int = 0
    rcpt_by_recipient: Counter[str] = field(default_factory=Counter)
    accepted: list[tuple[str, str, float]] = field(default_factory=list)
    lost_acks: list[str] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._random = random.Random(self.plan.seed)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self._lock:
            if not getattr(session, "_counted", False):
                session._counted = True
                self.connections += 1
                self.active += 1
                self.max_active = max(self.max_active, self.active)
        session.host_name = hostname
        return self._advertise_pipelining(responses)

    def _advertise_pipelining(self, responses: list[str]) -> list[str]:
        if not self.plan.pipelining:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    def _refuse_sender(self, server: Any, session: Any, address: str) -> str | None:
        reply = self.plan.by_sender.get(address)
        if reply is None:
            return None
        if reply.startswith("421"):
            with self._lock:
                if getattr(session, "_counted", False):
                    session._counted = False
                    self.active -= 1
            asyncio.get_running_loop().call_later(0.005, server.transport.close)
        return reply

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if getattr(session, "_counted", False):
                session._counted = False
                self.active -= 1
        return "221 Bye"

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refused = self._refuse_sender(server, session, address)
        if refused is not None:
            return refused
        if self.plan.drop_session_rate and self._random.random() < self.plan.drop_session_rate:
            with self._lock:
                if getattr(session, "_counted", False):
                    session._counted = False
                    self.active -= 1
            asyncio.get_running_loop().call_later(0.005, server.transport.close)
            return "421 4.3.2 Service shutting down"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self._lock:
            self.rcpt_attempts += 1
            self.rcpt_by_recipient[address] += 1
        once = self.plan.once_by_recipient.pop(address, None)
        if once is not None:
            if once.startswith("421"):
                with self._lock:
                    if getattr(session, "_counted", False):
                        session._counted = False
                        self.active -= 1
                asyncio.get_running_loop().call_later(0.005, server.transport.close)
            return once
        if address in self.plan.by_recipient:
            reply = self.plan.by_recipient[address]
            if reply.startswith(("4", "5")):
                return reply
        for probability, reply in self.plan.random_rcpt:
            if self._random.random() < probability:
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        found = MESSAGE_ID.search(data)
        loop = asyncio.get_running_loop()
        with self._lock:
            for rcpt in envelope.rcpt_tos:
                self.accepted.append((rcpt, found.group(1).decode() if found else "", loop.time()))
        if self.plan.lost_ack_rate and self._random.random() < self.plan.lost_ack_rate:
            # The message is already kept: the client cannot know, and must not lose it.
            with self._lock:
                self.lost_acks.extend(envelope.rcpt_tos)
            await asyncio.sleep(self.plan.lost_ack_delay_s)
        return "250 2.0.0 OK"

    def ids(self) -> Counter[str]:
        return Counter(message_id for _, message_id, _ in self.accepted)

    def recipients(self) -> Counter[str]:
        return Counter(rcpt for rcpt, _, _ in self.accepted)


class FaultySink:
    """Start, stop (outage) and restart a FaultyHandler server on one fixed port."""

    def __init__(self, handler: FaultyHandler) -> None:
        self.handler = handler
        self.host = "127.0.0.1"
        self.port = free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            self.handler, hostname=self.host, port=self.port, server_hostname="faulty.localhost"
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> FaultySink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
