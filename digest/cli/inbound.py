"""`digest inbound`: commands, replies, bounces and complaints by email (SMTP, or one message
piped in by the MTA)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from digest.cli.context import fail, state
from digest.cli.readable import DigestTyper

commands = DigestTyper()


@commands.command("inbound")
def inbound(
    ctx: typer.Context,
    stdin: bool = typer.Option(False, "--stdin", help="Read one message from standard input."),
    to: list[str] = typer.Option(
        [], "--to", help="Envelope recipient of the --stdin message (default: its headers)."
    ),
    sender: str | None = typer.Option(
        None, "--from", help="Envelope sender of the --stdin message (default: Return-Path)."
    ),
    host: str | None = typer.Option(None, "--host", help="Listen address (inbound.host)."),
    port: int | None = typer.Option(None, "--port", help="Listen port (inbound.port)."),
) -> None:
    """Take commands, replies, bounces and complaints by email.

    \b
    Runs an SMTP server for the inbound addresses, or, with --stdin, handles one message piped
    in by an existing MTA (e.g. a Postfix pipe transport).

    \b
    Examples:
        digest inbound --port 2525
        digest inbound --stdin < message.eml
    """
    import logging
    import signal
    import threading

    from digest.smtpd.server import InboundServer, wait_forever
    from digest.usecases import inbound as use_case

    services = state(ctx).services
    if stdin:
        raw = sys.stdin.buffer.read()
        if not raw.strip():
            fail("no message on standard input")
        result = use_case.handle(
            services,
            raw,
            mail_from=sender if sender is not None else use_case.stdin_sender(raw),
            rcpt_tos=list(to) or use_case.stdin_recipients(raw),
        )
        Console().print(f"{result.action}: {result.detail}", highlight=False)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with InboundServer(services, host=host, port=port) as server:
            Console(stderr=True).print(
                f"Inbound SMTP on {server.host}:{server.port}; Ctrl-C to stop.", highlight=False
            )
            wait_forever(stop)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(f"cannot listen: {exc.strerror or exc}")
