"""Admin CLI commands: subscribers show/remove/import/export, editions, resume-sending, doctor,
inbound.

Thin edges like digest/commands/fetch.py: parse and validate input, call a use case or a store
function, print a table or JSON. Errors are one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from digest.commands.output import Col, counts, minute, print_record, print_table
from digest.commands.readable import DigestTyper
from digest.commands.stats import DELIVERY_ORDER, edition_status
from digest.store import suppressions
from digest.usecases.subscriber_import import IMPORT_COLUMNS

editions_app = DigestTyper(
    help="Editions and their delivery outcomes.\n\n\b\nExample:\n    digest editions list",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 1) -> NoReturn:
    Console(stderr=True).print(f"[red]Error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _services(ctx: typer.Context) -> Any:
    """The services of the lead's CLI State, over a migrated database (else a one-line error)."""
    return ctx.obj.services


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")


def _address(value: str) -> str:
    """A validated, normalised, ASCII-only address, or a ValueError with the reason."""
    from digest.addresses import normalise_address

    return normalise_address(value)


# ---------------------------------------------------------------- subscribers


def subscribers_show(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="Address of the subscriber."),
    as_json: bool = typer.Option(False, "--json", help="Everything stored, as JSON."),
) -> None:
    """Show one subscriber: profile, ratings, consents and deliveries.

    \b
    Example:
        digest subscribers show ada@example.com --json
    """
    from sqlmodel import Session

    from digest.store import subscribers as subscriber_store
    from digest.store import web as web_store

    with Session(_services(ctx).engine) as session:
        subscriber = subscriber_store.get_by_email(session, email.strip())
        if subscriber is None:
            reason = suppressions.reason(session, email)
            _fail(f"no subscriber {email!r}" + (f" (suppressed: {reason})" if reason else ""))
        data = web_store.export_subscriber(session, subscriber)
        data["suppression"] = suppressions.reason(session, subscriber.email)
    if as_json:
        _print_json(data)
        return
    pairs = [
        (key, minute(value) if key.endswith("_at") and value else value)
        for key, value in data["subscriber"].items()
    ]
    pairs += [
        ("ratings", len(data["ratings"])),
        ("consents", len(data["consents"])),
        ("deliveries", len(data["deliveries"])),
        ("suppression", data["suppression"] or "-"),
    ]
    print_record(pairs)


def subscribers_remove(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="Address to erase."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Erase a subscriber and every row about them; only a hashed suppression entry remains.

    \b
    Example:
        digest subscribers remove ada@example.com --yes
    """
    from sqlmodel import Session

    from digest.store import subscribers as subscriber_store
    from digest.usecases.subscriptions import erase

    services = _services(ctx)
    with Session(services.engine) as session:
        subscriber = subscriber_store.get_by_email(session, email.strip())
        subscriber_id = subscriber.id if subscriber else None
    if subscriber_id is None:
        _fail(f"no subscriber {email!r}")
    if not yes and not typer.confirm(f"Erase {email} and all their data?"):
        _fail("not erased")
    erase(services, subscriber_id)
    Console().print(f"Erased {email.strip().lower()}; the address stays suppressed.")


def read_import_csv(path: Path) -> tuple[list[Any], list[str]]:
    """(valid rows, one error line per bad row) of a subscriber CSV (see subscriber_import)."""
    from digest.usecases.subscriber_import import read_import_csv as read

    return read(path)


def subscribers_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV with columns email,interests[,categories,...]."),
    confirmed: bool = typer.Option(
        False, "--confirmed", help="Consent was gathered elsewhere: add them as active."
    ),
) -> None:
    """Import subscribers from CSV (idempotent; bad rows are reported, the rest imported).

    \b
    Columns: email, interests, and optionally categories and seed_papers (space-separated),
    authors (followed authors, separated by ";"), timezone (IANA name) and hour (0-23, local
    delivery hour). Without --confirmed the rows are added as pending and get no mail until
    they confirm.
    Exit code 1 when any row was refused.

    \b
    Example:
        digest subscribers import list.csv --confirmed
    """
    from digest.models import utcnow
    from digest.usecases.subscriber_import import import_subscribers

    try:
        rows, errors = read_import_csv(file)
    except ValueError as exc:
        _fail(str(exc))
    services = _services(ctx)
    err = Console(stderr=True)
    for error in errors:
        err.print(f"[yellow]Skipped[/yellow] {error}", highlight=False, soft_wrap=True)
    report = import_subscribers(services.engine, rows, confirmed=confirmed, now=utcnow())
    Console().print(
        f"Imported {report.added} ({'active' if confirmed else 'pending'}), "
        f"{report.present} already on the list, {report.suppressed} suppressed, "
        f"{len(errors)} refused.",
        highlight=False,
    )
    if errors:
        raise typer.Exit(1)


def subscribers_export(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV file to write (import reads it back)."),
    status: list[str] = typer.Option(
        [], "--status", help="Only these statuses (default: active, paused, pending)."
    ),
) -> None:
    """Export subscribers as CSV in the format `import` reads.

    \b
    Example:
        digest subscribers export list.csv
    """
    from sqlmodel import Session

    from digest.store.admin import EXPORT_STATUSES, export_subscribers

    with Session(_services(ctx).engine) as session:
        rows = export_subscribers(session, status or EXPORT_STATUSES)
        records = [
            {
                "email": s.email,
                "interests": s.interests,
                "categories": " ".join(s.categories),
                "seed_papers": " ".join(s.seed_papers),
                "timezone": s.timezone,
                "hour": s.delivery_hour,
                "authors": "; ".join(s.authors),
            }
            for s in rows
        ]
    try:
        with file.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=IMPORT_COLUMNS)
            writer.writeheader()
            writer.writerows(records)
    except OSError as exc:
        _fail(f"{file}: {exc.strerror or exc}")
    Console().print(f"Wrote {len(records)} subscribers to {file}.", highlight=False)


# ---------------------------------------------------------------- editions, sending


@editions_app.command("list")
def editions_list(
    ctx: typer.Context,
    limit: int = typer.Option(30, "--limit", min=1, help="Newest editions shown."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List editions, newest first, with delivery counts by state.

    \b
    Examples:
        digest editions list --limit 7
        digest editions list --json
    """
    from sqlmodel import Session

    from digest.store.admin import list_editions

    with Session(_services(ctx).engine) as session:
        rows = list_editions(session, limit=limit)
    if as_json:
        _print_json(rows)
        return
    print_table(
        [
            Col("id", numeric=True),
            Col("date"),
            Col("status", text=True),
            Col("deliveries", text=True),
            Col("bounces/complaints", text=True),
        ],
        [
            (
                row["id"],
                row["date"],
                edition_status(row),
                counts(row["deliveries"], DELIVERY_ORDER),
                counts(row["reports"]),
            )
            for row in rows
        ],
    )


@editions_app.command("show")
def editions_show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="DATE|ID", help="Edition date (YYYY-MM-DD) or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one edition and its delivery counts by state.

    \b
    Examples:
        digest editions show 2026-11-24
        digest editions show 12 --json
    """
    from sqlmodel import Session

    from digest.store.admin import find_edition

    with Session(_services(ctx).engine) as session:
        row = find_edition(session, ref.strip())
    if row is None:
        _fail(f"no edition {ref!r} (give a date YYYY-MM-DD or an id)")
    if as_json:
        _print_json(row)
        return
    print_record(
        [
            (key, counts(value, DELIVERY_ORDER) if isinstance(value, dict) else value)
            for key, value in row.items()
        ]
    )


def resume_sending(ctx: typer.Context) -> None:
    """Resume sending after a complaint-rate pause.

    \b
    Example:
        digest resume-sending
    """
    from digest.db import session_scope
    from digest.usecases.bounces import resume_sending as resume

    with session_scope(_services(ctx).engine) as session:
        closed = resume(session)
    Console().print("Sending resumed." if closed else "Sending was not paused.")


def doctor(ctx: typer.Context) -> None:
    """Check settings, database, SMTP relay (without sending), DKIM and sources.

    Prints one line per check, with a fix for each failure; exits 1 if any check fails. In
    production mode every setting still at a shipped example value fails (example.com
    addresses, the sample postal address, a base URL on localhost).

    \b
    Example:
        DIGEST_CONFIG=/etc/digest/prod.toml digest doctor
    """
    from digest.usecases.doctor import run_checks

    checks = run_checks(ctx.obj.settings)
    console = Console()
    for check in checks:
        mark = "[green]ok[/green]  " if check.ok else "[red]FAIL[/red]"
        fix = f" [bold]fix:[/bold] {check.fix}" if not check.ok and check.fix else ""
        console.print(f"{mark} {check.name}: {check.detail}{fix}", highlight=False, soft_wrap=True)
    failed = sum(not c.ok for c in checks)
    if failed:
        Console(stderr=True).print(f"{failed} check(s) failed", highlight=False)
        raise typer.Exit(1)


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

    services = _services(ctx)
    if stdin:
        raw = sys.stdin.buffer.read()
        if not raw.strip():
            _fail("no message on standard input")
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
        _fail(f"cannot listen: {exc.strerror or exc}")


def register(app: typer.Typer) -> None:
    """Add the admin commands; the subscriber ones join the existing `subscribers` group."""
    from digest.cli import subscribers_app

    subscribers_app.command("show")(subscribers_show)
    subscribers_app.command("remove")(subscribers_remove)
    subscribers_app.command("import")(subscribers_import)
    subscribers_app.command("export")(subscribers_export)
    app.add_typer(editions_app, name="editions")
    app.command("resume-sending")(resume_sending)
    app.command("doctor")(doctor)
    app.command("inbound")(inbound)
