"""`digest inbound`: commands, replies, bounces and complaints by email (SMTP, or one message
piped in by the MTA)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from digest.cli.context import fail, state
from digest.cli.readable import DigestTyper

if TYPE_CHECKING:
    from digest.smtpd.server import InboundServer

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

    from digest.smtpd.server import serve
    from digest.usecases.piped_mail import NoMessage, handle_piped

    services = state(ctx).services
    if stdin:
        try:
            result = handle_piped(services, sys.stdin.buffer.read(), mail_from=sender, rcpt_tos=to)
        except NoMessage as exc:
            fail(str(exc))
        Console().print(f"{result.action}: {result.detail}", highlight=False)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    def ready(server: InboundServer) -> None:
        Console(stderr=True).print(
            f"Inbound SMTP on {server.host}:{server.port}; Ctrl-C to stop.", highlight=False
        )

    try:
        serve(services, host=host, port=port, ready=ready)
    except OSError as exc:
        fail(f"cannot listen: {exc.strerror or exc}")
