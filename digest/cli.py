"""The admin CLI (Typer). Each command parses input, calls one use case, and formats output.

Errors are one line on stderr and a non-zero exit; `--json` prints data for scripts.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from digest.bootstrap import Services, build
from digest.commands.readable import DigestTyper
from digest.db import DatabaseError, current_revision, upgrade
from digest.settings import Settings, SettingsError, load_from_environment

app = DigestTyper(
    help="Trending-papers email digest: ingest, rank, render and send a daily digest.\n\n"
    "\b\nExamples:\n    digest demo\n    digest --set ranking.papers_per_digest=5 send --dry-run",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = DigestTyper(
    help="Database schema.\n\n\b\nExample:\n    digest db upgrade", no_args_is_help=True
)
subscribers_app = DigestTyper(
    help="Manage the list.\n\n\b\nExamples:\n    digest subscribers add ada@example.org"
    "\n    digest subscribers list --status pending",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(subscribers_app, name="subscribers")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error and exit non-zero."""
    Console(stderr=True).print(f"[red]Error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@dataclass
class State:
    """What every command can reach: the settings (loaded lazily) and the services."""

    config: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None
    _services: Services | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_from_environment(self.config, self.overrides)
            except SettingsError as exc:
                fail(str(exc), 2)
            from digest.logs import configure_logging

            configure_logging(self._settings)
        return self._settings

    @property
    def bare_services(self) -> Services:
        """Services without checking the schema (for the commands that create it)."""
        if self._services is None:
            try:
                self._services = build(self.settings)
            except (SettingsError, DatabaseError) as exc:
                fail(str(exc), 2)
        return self._services

    @property
    def services(self) -> Services:
        """Services over a migrated database, or a one-line error saying how to get one."""
        services = self.bare_services
        try:
            revision = current_revision(services.engine)
        except SQLAlchemyError as exc:
            from digest.db_errors import describe

            fail(describe(exc, self.settings.database_url), 2)
        if revision is None:
            fail("the database is not initialised: run `digest init`", 2)
        return services


def state(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", help="Extra TOML file (default: $DIGEST_CONFIG).", exists=False
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override one setting, e.g. --set ranking.papers_per_digest=5."
    ),
) -> None:
    overrides: dict[str, Any] = {}
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = value
    ctx.obj = State(config=config, overrides=overrides)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- demo, database


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for the demo's files."),
) -> None:
    """Run the whole service offline: sample feeds -> 3 subscribers -> real SMTP -> .eml files.

    \b
    Example:
        digest demo --out demo-out
    """
    from digest.demo import run_demo

    report = run_demo(out)
    console = Console()
    console.print(
        f"Papers: {report.papers_seen} read from 3 recorded feeds, {report.papers_new} new.\n"
        f"Subscribers: {report.subscribers}.\n"
        f"Messages sent over SMTP to the local sink: {report.sent}."
        + (
            f" ({report.already_sent} already sent earlier today: nothing new to send.)"
            if report.sent == 0 and report.already_sent
            else ""
        )
        + f"\nOpen {report.index} ({len(report.messages)} raw messages in {out}/*.eml).\n"
        f"Took {report.seconds:.1f} s.",
        highlight=False,
    )


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the database, or bring it up to date.

    \b
    Example:
        DIGEST_DATABASE_URL=sqlite:///digest.db digest init
    """
    _upgrade(state(ctx))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Migrate the database to the newest schema (the Procfile's release step).

    \b
    Example:
        digest db upgrade
    """
    _upgrade(state(ctx))


def _upgrade(st: State) -> None:
    engine = st.bare_services.engine
    try:
        revision = upgrade(engine)
    except Exception as exc:  # any driver error becomes one line
        fail(f"database upgrade failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    Console().print(f"Database at revision {revision}.", highlight=False)


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the schema revision of the database.

    \b
    Example:
        digest db current
    """
    Console().print(current_revision(state(ctx).services.engine) or "not initialised")


# ---------------------------------------------------------------- subscribers


# ---------------------------------------------------------------- ranking and sending


@app.command()
def preview(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="Subscriber whose digest to render."),
    out: Path | None = typer.Option(None, "--out", help="Write the HTML here."),
    open_: bool = typer.Option(False, "--open", help="Open the HTML in a browser."),
) -> None:
    """Render today's digest for one subscriber without sending it.

    \b
    Example:
        digest preview ada@example.com --out ada.html --open
    """
    from digest.usecases.previews import preview_digest

    try:
        digest = preview_digest(state(ctx).services, email=email)
    except LookupError as exc:
        fail(str(exc))
    if not digest.picks:
        Console().print(
            f"Nothing new for {email} since their last digest: no email would be sent today.",
            highlight=False,
        )
        return
    if open_ and out is None:
        import tempfile

        out = Path(tempfile.mkdtemp(prefix="digest-preview-")) / "preview.html"
    if out:
        out.write_text(digest.html, encoding="utf-8")
        Console().print(f"Wrote {out} ({digest.subject}).", highlight=False)
        if open_:
            import webbrowser

            webbrowser.open(out.resolve().as_uri())
    else:
        sys.stdout.write(digest.text)


@app.command("send-test")
def send_test(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", help="Address to send the test digest to."),
    interests: str = typer.Option("", "--interests", help="Interests for the test profile."),
) -> None:
    """Send one real digest now, marked as a test; the delivery ledger is not touched.

    \b
    Example:
        digest send-test --to me@my-lab.org --interests "diffusion models"
    """
    from email_validator import EmailNotValidError, validate_email

    from digest.usecases.previews import send_test_digest

    try:
        address = validate_email(to, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        fail(f"{to!r}: {exc}")
    outcome = asyncio.run(send_test_digest(state(ctx).services, to=address, interests=interests))
    if outcome.kind != "sent":
        fail(f"not sent: {outcome.kind} {outcome.code or ''} {outcome.text}".strip())
    Console().print(f"Sent a test digest to {address}.", highlight=False)


@app.command()
def stats(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """List size, last fetch per source, recent editions, bounce and complaint rates.

    \b
    Examples:
        digest stats
        digest stats --json | jq .last_7_days
    """
    from digest.commands.stats import print_stats
    from digest.usecases.reports import collect_stats

    data = collect_stats(state(ctx).services)
    if as_json:
        _print_json(data)
        return
    print_stats(data)


# ---------------------------------------------------------------- processes


@app.command()
def worker(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="Worker name in the ledger and logs."),
    send_only: bool = typer.Option(
        False, "--send-only", help="Only send; never take the scheduler role (fetch, plan)."
    ),
) -> None:
    """Run the scheduler: fetch sources, plan editions, send due deliveries.

    \b
    Any number of workers may run against one PostgreSQL database: one holds the scheduler
    lease (fetch, plan), every one sends. On SQLite a second worker refuses to start.
    SIGTERM or Ctrl-C: stop claiming, finish in-flight messages, exit 0.

    \b
    Examples:
        digest worker --name worker-1
        digest worker --send-only
    """
    import logging

    from digest.commands.send import refuse_placeholders
    from digest.usecases.leases import WorkerLockError
    from digest.usecases.scheduler import run_worker

    refuse_placeholders(state(ctx).settings)  # a worker sends: same rule as `digest send`
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        code = run_worker(state(ctx).services, name=name, run_scheduler=not send_only)
    except WorkerLockError as exc:
        fail(str(exc))
    raise typer.Exit(code)


def _register_plugins() -> None:
    from digest.commands import admin as admin_commands
    from digest.commands import fetch as fetch_commands
    from digest.commands import rank as rank_commands
    from digest.commands import send as send_commands
    from digest.commands import serve as serve_commands
    from digest.commands import subscribers as subscriber_commands

    subscriber_commands.register(subscribers_app)
    rank_commands.register(app)
    send_commands.register(app)
    serve_commands.register(app)

    fetch_commands.register(app)
    admin_commands.register(app)


_register_plugins()


def main() -> None:
    try:
        app()
    except SQLAlchemyError as exc:
        Console(stderr=True).print(
            f"[red]Error:[/red] database: {str(exc).splitlines()[0]}", highlight=False
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    # `python -m digest.cli` runs this file as __main__; the command modules import
    # `digest.cli`, a second copy whose State class differs, so --config/--set would be lost.
    # Run the one copy they see.
    from digest.cli import main as imported_main

    imported_main()
