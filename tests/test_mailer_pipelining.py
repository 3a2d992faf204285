"""The SMTP transport's pipelined path (RFC 2920) and its lock-step twin, against real servers.

Two kinds of server on loopback: aiosmtpd (tests/smtp_faults.py, which can advertise PIPELINING
and refuse per sender or recipient) for realistic sessions, and a small scripted server whose
replies each test decides, for the protocol's corners: replies split byte by byte or held back
until the whole group has arrived, a reply that never comes, a 354 after a refused recipient,
multi-line and malformed replies.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from digest import bootstrap
from digest.mailer import SendOutcome, SmtpConnection
from digest.mailer.protocol import address_path, data_body
from digest.settings import Settings, SmtpSettings
from digest.smtpd.sink import SinkHandler, free_port
from tests.smtp_faults import FaultPlan, FaultyHandler, FaultySink

SENDER = "digest@example.com"


def message(n: int, body: bytes = b"Hello.\r\n") -> bytes:
    return (
        f"From: {SENDER}\r\nTo: r{n}@example.com\r\nSubject: m{n}\r\n"
        f"Message-ID: <m{n}@example.com>\r\n\r\n"
    ).encode() + body


async def send(connection: SmtpConnection, recipient: str, n: int = 0, **kw: Any) -> SendOutcome:
    return await connection.send(
        sender=kw.get("sender", SENDER), recipient=recipient, message=kw.get("msg", message(n))
    )


# ------------------------------------------------------------------ aiosmtpd: refusals


@pytest.fixture(params=[True, False], ids=["pipelined", "lock-step"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def faulty(pipelining: bool, **plan: Any) -> FaultySink:
    return FaultySink(FaultyHandler(FaultPlan(pipelining=pipelining, **plan)))


async def test_the_client_pipelines_only_when_the_server_offers_it(pipelining: bool) -> None:
    with faulty(pipelining) as sink:
        connection = SmtpConnection(SmtpSettings(host=sink.host, port=sink.port))
        try:
            assert (await send(connection, "a@example.com")).kind == "sent"
            assert connection._client is not None
            assert connection._client.pipelining is pipelining
        finally:
            await connection.close()
        assert sink.handler.recipients() == {"a@example.com": 1}


@pytest.mark.parametrize(
    ("reply", "kind", "hard"),
    [
        ("550 5.1.1 <bad@example.com>: Recipient address rejected: User unknown", "failed", True),
        ("451 4.3.0 Try again later", "deferred", False),
        ("552 5.2.2 Mailbox full", "deferred", False),
        ("554 5.7.1 Relay access denied", "failed", False),
    ],
)
async def test_a_refused_recipient_mid_session_leaves_the_session_clean(
    pipelining: bool, reply: str, kind: str, hard: bool
) -> None:
    with faulty(pipelining, by_recipient={"bad@example.com": reply}) as sink:
        connection = SmtpConnection(SmtpSettings(host=sink.host, port=sink.port))
        try:
            first = await send(connection, "good1@example.com", 1)
            refused = await send(connection, "bad@example.com", 2)
            after = await send(connection, "good2@example.com", 3)
        finally:
            await connection.close()
    assert first.kind == "sent" and after.kind == "sent"
    assert refused.kind == kind and refused.code == int(reply[:3])
    assert refused.text == reply[4:]
    assert refused.hard_bounce is hard
    # No reply was taken for another: the refused message was not kept, the next one was,
    # and everything went over the one session.
    assert sink.handler.recipients() == {"good1@example.com": 1, "good2@example.com": 1}
    assert sink.handler.ids() == {"<m1@example.com>": 1, "<m3@example.com>": 1}
    assert sink.handler.connections == 1


@pytest.mark.parametrize(
    ("reply", "kind"),
    [("550 5.7.1 Sender rejected", "failed"), ("451 4.7.1 Greylisted", "deferred")],
)
async def test_a_refused_sender_is_classified_and_the_next_message_goes_through(
    pipelining: bool, reply: str, kind: str
) -> None:
    with faulty(pipelining, by_sender={"blocked@example.com": reply}) as sink:
        connection = SmtpConnection(SmtpSettings(host=sink.host, port=sink.port))
        try:
            refused = await send(connection, "a@example.com", 1, sender="blocked@example.com")
            after = await send(connection, "b@example.com", 2)
        finally:
            await connection.close()
    assert (refused.kind, refused.code, refused.text) == (kind, int(reply[:3]), reply[4:])
    assert not refused.hard_bounce
    assert after.kind == "sent"
    assert sink.handler.recipients() == {"b@example.com": 1}
    assert sink.handler.connections == 1


async def test_421_to_mail_is_the_relays_trouble_and_the_next_message_reconnects(
    pipelining: bool,
) -> None:
    reply = "421 4.3.2 Service shutting down"
    with faulty(pipelining, by_sender={"closing@example.com": reply}) as sink:
        connection = SmtpConnection(SmtpSettings(host=sink.host, port=sink.port, timeout_s=5))
        try:
            dropped = await send(connection, "a@example.com", 1, sender="closing@example.com")
            after = await send(connection, "b@example.com", 2)
        finally:
            await connection.close()
    assert (dropped.kind, dropped.code) == ("relay", 421)
    assert after.kind == "sent"
    assert sink.handler.recipients() == {"b@example.com": 1}
    assert sink.handler.connections == 2


async def test_random_refusals_and_drops_are_each_classified_as_the_server_decided(
    pipelining: bool,
) -> None:
    """S3 on the transport: 451/550 RCPTs and 421 sessions at random over 4 connections."""
    plan = {
        "random_rcpt": [(0.15, "451 4.3.0 Try later"), (0.1, "550 5.1.1 No such user")],
        "drop_session_rate": 0.05,
        "seed": 7,
    }
    with faulty(pipelining, **plan) as sink:
        settings = SmtpSettings(host=sink.host, port=sink.port, timeout_s=5)
        outcomes: dict[str, SendOutcome] = {}

        async def worker(numbers: list[int]) -> None:
            connection = SmtpConnection(settings)
            try:
                for n in numbers:
                    outcomes[f"r{n}@example.com"] = await send(connection, f"r{n}@example.com", n)
            finally:
                await connection.close()

        await asyncio.gather(*(worker(list(range(i, 240, 4))) for i in range(4)))
    sent = {rcpt for rcpt, o in outcomes.items() if o.kind == "sent"}
    # What the server kept is exactly what we call sent, once each.
    assert set(sink.handler.recipients()) == sent
    assert all(count == 1 for count in sink.handler.recipients().values())
    for outcome in outcomes.values():
        if outcome.kind == "deferred":
            assert outcome.code == 451
        elif outcome.kind == "failed":
            assert outcome.code == 550 and outcome.hard_bounce
        elif outcome.kind == "relay":
            assert outcome.code == 421
        else:
            assert outcome.kind == "sent" and outcome.code == 250
    assert len(sent) > 100
    assert {o.kind for o in outcomes.values()} == {"sent", "deferred", "failed", "relay"}


# ------------------------------------------------------------------ aiosmtpd: bytes arrive


@dataclass
class PipeliningSinkHandler(SinkHandler):
    """The demo sink's handler, saying PIPELINING in its EHLO reply."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


@asynccontextmanager
async def pipelining_sink(**controller: Any) -> AsyncIterator[tuple[PipeliningSinkHandler, int]]:
    handler = PipeliningSinkHandler()
    port = free_port()
    server = Controller(handler, hostname="127.0.0.1", port=port, **controller)
    server.start()
    try:
        yield handler, port
    finally:
        server.stop()


@pytest.mark.parametrize(
    "body",
    [
        b".leading dot\r\n..two dots\r\nmiddle . dot\r\n.\r\nlast line",
        b"no dot at all\r\nsecond line\r\n",
        b"",
    ],
    ids=["dots", "plain", "empty"],
)
async def test_bytes_arrive_exactly_as_built_over_the_pipelined_path(body: bytes) -> None:
    built = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: dots\r\n\r\n" + body
    async with pipelining_sink() as (handler, port):
        connection = SmtpConnection(SmtpSettings(host="127.0.0.1", port=port))
        try:
            outcomes = [await send(connection, "b@example.com", msg=built) for _ in range(3)]
        finally:
            await connection.close()
    assert [o.kind for o in outcomes] == ["sent"] * 3
    assert connection._client is None
    expected = built if built.endswith(b"\r\n") else built + b"\r\n"
    assert [m.data for m in handler.messages] == [expected] * 3
    assert {m.sender for m in handler.messages} == {SENDER}


def _self_signed(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        # As for Chromium and PostgreSQL: a bare machine skips, CI must run the TLS legs.
        if os.environ.get("CI"):
            pytest.fail("openssl is required when CI is set (TLS transport tests)")
        pytest.skip("openssl is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_pipelining_works_over_starttls_and_implicit_tls(mode: str, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    options = {"tls_context": server_context} if mode == "starttls" else {}
    if mode == "tls":
        options["ssl_context"] = server_context
    async with pipelining_sink(**options) as (handler, port):
        # The relay's certificate is signed by a private CA (itself): trusted through the
        # setting, by the graph bootstrap builds for the service.
        settings = Settings(
            mode="dev",
            database_url=f"sqlite:///{tmp_path / 'tls.db'}",
            smtp=SmtpSettings(host="127.0.0.1", port=port, tls=mode, timeout_s=10, ca_file=cert),
        )
        services = bootstrap.build(settings)
        connection = services.smtp_connection()
        try:
            outcomes = [await send(connection, f"r{n}@example.com", n) for n in range(5)]
            client = connection._client
            assert client is not None and client.pipelining
            assert client.protocol is not None and client.protocol._over_ssl
        finally:
            await connection.close()
            services.close()
    assert [o.kind for o in outcomes] == ["sent"] * 5
    assert [m.recipients for m in handler.messages] == [[f"r{n}@example.com"] for n in range(5)]


# ------------------------------------------------------------------ a scripted server

Decide = Callable[[str, bytes, dict[str, Any]], "str | None"]


def standard(verb: str, arg: bytes, state: dict[str, Any]) -> str | None:
    """A well-behaved server: the reply to one command (None: never answer)."""
    if verb == "MAIL":
        state["mail"], state["rcpts"] = arg, []
        return "250 2.1.0 Ok"
    if verb == "RCPT":
        if state.get("mail") is None:
            return "503 5.5.1 Error: need MAIL command"
        state["rcpts"].append(arg)
        return "250 2.1.5 Ok"
    if verb == "DATA":
        return "354 End data with <CR><LF>.<CR><LF>" if state.get("rcpts") else "554 5.5.1 No rcpt"
    if verb == "BODY":
        return "250 2.0.0 Ok: queued"
    if verb == "RSET":
        state["mail"], state["rcpts"] = None, []
        return "250 2.0.0 Ok"
    return "502 5.5.2 Error: command not recognized"


@dataclass
class ScriptedRelay:
    """An SMTP server on loopback whose every reply a test may decide.

    write: "each" writes every reply as it is decided; "group" holds replies back until the
    reply to DATA is decided, so a client that waits for each reply before the next command
    would wait forever; "trickle" writes replies one byte at a time, yielding in between.
    """

    decide: Decide = standard
    pipelining: bool = True
    write: str = "each"
    sessions: int = 0
    messages: list[tuple[list[bytes], bytes]] = field(default_factory=list)
    port: int = 0

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        state: dict[str, Any] = {"session": self.sessions, "mail": None, "rcpts": []}
        held: list[bytes] = []

        async def reply(text: str, *, flush: bool = False) -> None:
            data = (text + "\r\n").encode()
            if self.write == "group" and not flush:
                held.append(data)
                return
            data = b"".join(held) + data
            held.clear()
            if self.write == "trickle":
                for i in range(len(data)):
                    writer.write(data[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(0)
            else:
                writer.write(data)
                await writer.drain()

        try:
            await reply("220 scripted ESMTP", flush=True)
            while line := await reader.readline():
                verb, _, arg = line.rstrip(b"\r\n").partition(b" ")
                name = verb.upper().decode()
                if name == "EHLO":
                    offer = "250-PIPELINING\r\n" if self.pipelining else ""
                    await reply(f"250-scripted\r\n{offer}250 SIZE 10000000", flush=True)
                    continue
                if name == "QUIT":
                    await reply("221 Bye", flush=True)
                    break
                answer = self.decide(name, arg, state)
                if answer is None:
                    await reader.read()  # never answers; waits for the client to hang up
                    return
                closing = answer.startswith("421")
                await reply(answer, flush=closing or name in ("DATA", "RSET"))
                if name == "DATA" and answer.startswith("354"):
                    data = await reader.readuntil(b"\r\n.\r\n")
                    self.messages.append((list(state["rcpts"]), data))
                    state["mail"], state["rcpts"] = None, []
                    final = self.decide("BODY", data, state)
                    if final is None:
                        await reader.read()
                        return
                    closing = final.startswith("421")
                    await reply(final, flush=True)
                if closing:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ScriptedRelay]:
        server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()


def settings_for(relay: ScriptedRelay, timeout_s: float = 5.0) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=relay.port, timeout_s=timeout_s)


async def send_many(relay: ScriptedRelay, count: int, **settings: Any) -> list[SendOutcome]:
    connection = SmtpConnection(settings_for(relay, **settings))
    try:
        return [await send(connection, f"r{n}@example.com", n) for n in range(count)]
    finally:
        await connection.close()


@pytest.mark.parametrize("write", ["each", "group", "trickle"])
async def test_replies_in_one_segment_or_byte_by_byte_are_all_read_in_order(write: str) -> None:
    relay = ScriptedRelay(write=write)
    async with relay.running():
        outcomes = await send_many(relay, 20)
    assert [o.kind for o in outcomes] == ["sent"] * 20
    assert [rcpts for rcpts, _ in relay.messages] == [
        [f"TO:<r{n}@example.com>".encode()] for n in range(20)
    ]
    assert relay.sessions == 1


async def test_a_server_that_answers_only_a_whole_group_proves_one_write() -> None:
    """With replies held back until DATA, a lock-step client would time out on MAIL."""
    relay = ScriptedRelay(write="group")
    async with relay.running():
        started = time.monotonic()
        outcomes = await send_many(relay, 3, timeout_s=2)
    assert [o.kind for o in outcomes] == ["sent"] * 3
    assert time.monotonic() - started < 1.5


async def test_without_pipelining_the_client_waits_for_each_reply() -> None:
    relay = ScriptedRelay(pipelining=False, write="trickle")
    async with relay.running():
        outcomes = await send_many(relay, 3)
    assert [o.kind for o in outcomes] == ["sent"] * 3


async def test_multi_line_replies_in_a_group_are_read_whole() -> None:
    def chatty(verb: str, arg: bytes, state: dict[str, Any]) -> str | None:
        if verb == "RCPT" and b"bad" in arg:
            return "550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 See https://example.com/help"  # noqa: E501
        answer = standard(verb, arg, state)
        if verb in ("MAIL", "RCPT") and answer and answer.startswith("250"):
            return f"250-{answer[4:]}\r\n250 and more"
        return answer

    relay = ScriptedRelay(decide=chatty)
    async with relay.running():
        connection = SmtpConnection(settings_for(relay))
        try:
            refused = await send(connection, "bad@example.com", 1)
            after = await send(connection, "good@example.com", 2)
        finally:
            await connection.close()
    assert refused.kind == "failed" and refused.code == 550 and refused.hard_bounce
    assert refused.text.startswith("5.1.1 The email account")
    assert after.kind == "sent"
    assert relay.sessions == 1


async def test_a_reply_that_never_comes_times_out_as_relay_trouble() -> None:
    def silent_once(verb: str, arg: bytes, state: dict[str, Any]) -> str | None:
        if verb == "RCPT" and state["session"] == 1:
            return None
        return standard(verb, arg, state)

    relay = ScriptedRelay(decide=silent_once)
    async with relay.running():
        started = time.monotonic()
        outcomes = await send_many(relay, 2, timeout_s=0.3)
        elapsed = time.monotonic() - started
    assert outcomes[0].kind == "relay" and "Timed out" in outcomes[0].text
    assert outcomes[1].kind == "sent"
    assert relay.sessions == 2
    assert elapsed < 2


async def test_a_lost_final_acknowledgement_times_out_as_relay_trouble() -> None:
    def slow_ack(verb: str, arg: bytes, state: dict[str, Any]) -> str | None:
        if verb == "BODY" and state["session"] == 1:
            return None
        return standard(verb, arg, state)

    relay = ScriptedRelay(decide=slow_ack)
    async with relay.running():
        outcomes = await send_many(relay, 2, timeout_s=0.3)
    assert [o.kind for o in outcomes] == ["relay", "sent"]
    assert relay.sessions == 2


async def test_354_after_a_refused_recipient_closes_the_session_and_keeps_the_refusal() -> None:
    """A server out of RFC 2920's rules: the session cannot be trusted, the refusal stands."""

    def sloppy(verb: str, arg: bytes, state: dict[str, Any]) -> str | None:
        if verb == "RCPT" and b"bad" in arg:
            return "550 5.1.1 User unknown"
        if verb == "DATA":
            return "354 go ahead"
        return standard(verb, arg, state)

    relay = ScriptedRelay(decide=sloppy)
    async with relay.running():
        connection = SmtpConnection(settings_for(relay))
        try:
            refused = await send(connection, "bad@example.com", 1)
            after = await send(connection, "good@example.com", 2)
        finally:
            await connection.close()
    assert (refused.kind, refused.code, refused.hard_bounce) == ("failed", 550, True)
    assert after.kind == "sent"
    assert relay.sessions == 2
    assert [rcpts for rcpts, _ in relay.messages] == [[b"TO:<good@example.com>"]]


async def test_a_refused_data_command_is_deferred_and_the_session_reset() -> None:
    def busy(verb: str, arg: bytes, state: dict[str, Any]) -> str | None:
        if verb == "DATA" and state["session"] == 1 and not state.get("refused"):
            state["refused"] = True
            return "451 4.3.0 Queue busy"
        return standard(verb, arg, state)

    relay = ScriptedRelay(decide=busy)
    async with relay.running():
        outcomes = await send_many(relay, 2)
    assert [(o.kind, o.code) for o in outcomes] == [("deferred", 451), ("sent", 250)]
    assert relay.sessions == 1


@pytest.mark.parametrize("final", ["421 4.4.2 Timeout", "451 4.3.0 Try again", "554 5.7.1 Spam"])
async def test_the_reply_after_the_body_is_classified(final: str) -> None:
    def judge(verb: str, arg: bytes, state: dict[str, Any]) -> str | None:
        if verb == "BODY" and state["session"] == 1 and not state.get("judged"):
            state["judged"] = True
            return final
        return standard(verb, arg, state)

    relay = ScriptedRelay(decide=judge)
    async with relay.running():
        outcomes = await send_many(relay, 2)
    expected = {"421": "relay", "451": "deferred", "554": "failed"}[final[:3]]
    assert (outcomes[0].kind, outcomes[0].code) == (expected, int(final[:3]))
    assert outcomes[1].kind == "sent"
    assert relay.sessions == (2 if final.startswith("421") else 1)


@pytest.mark.parametrize("junk", ["hello there", "2", "250"])
async def test_a_malformed_or_out_of_place_reply_is_relay_trouble(junk: str) -> None:
    def garbled(verb: str, arg: bytes, state: dict[str, Any]) -> str | None:
        if verb == "RCPT" and state["session"] == 1:
            return junk if junk != "250" else "354 what?"
        return standard(verb, arg, state)

    relay = ScriptedRelay(decide=garbled)
    async with relay.running():
        outcomes = await send_many(relay, 2, timeout_s=1)
    assert outcomes[0].kind == "relay"
    assert outcomes[1].kind == "sent"
    assert relay.sessions == 2


async def test_a_refused_connection_and_a_554_greeting_are_relay_trouble() -> None:
    connection = SmtpConnection(SmtpSettings(host="127.0.0.1", port=free_port(), timeout_s=2))
    assert (await send(connection, "a@example.com")).kind == "relay"

    async def unwelcoming(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"554 5.7.1 No SMTP service here\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(unwelcoming, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        connection = SmtpConnection(SmtpSettings(host="127.0.0.1", port=port, timeout_s=2))
        outcome = await send(connection, "a@example.com")
    finally:
        server.close()
    assert (outcome.kind, outcome.code) == ("relay", 554)


# ------------------------------------------------------------------ pure parts


def _library_body(message: bytes) -> bytes:
    """What aiosmtplib's own DATA path would send for `message`."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"


def test_the_fast_data_body_is_byte_for_byte_the_librarys() -> None:
    rng = random.Random(5)
    alphabet = [b"\r", b"\n", b"\r\n", b".", b"a", b"..", b"\r\n.", b"\n.", b"\r."]
    samples = [b"", b".", b"\r\n", b"a", b".\r\n", b"a\r\n.\r\n", b"\r\n\r\n", b"x\r"]
    samples += [b"".join(rng.choices(alphabet, k=rng.randrange(1, 40))) for _ in range(3000)]
    for sample in samples:
        assert data_body(sample) == _library_body(sample), sample


def test_plain_addresses_skip_parsing_and_others_keep_the_librarys_checks() -> None:
    plain = ["r@example.com", "first.last+tag@sub.example.org", "o'neil@x.io", "a_b@c-d.e"]
    for address in plain:
        assert address_path(address) == quote_address(address).encode()
    assert address_path("Some One <one@example.com>") == b"<one@example.com>"
    assert address_path('"odd local"@example.com') == b'<"odd local"@example.com>'
    # What cannot go on a command line is refused, or parsed down to a bare mailbox.
    with pytest.raises(ValueError):
        address_path("a b@c.d")
    with pytest.raises(ValueError):
        address_path('"a\\\r"@c.d')
    assert address_path("a@b.c>\r\nRCPT TO:<x@y.z") == b"<a@b.c>"
    assert address_path("<a@b.c> SIZE=1") == b"<a@b.c>"
