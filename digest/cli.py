"""The admin CLI (Typer). Each command parses input, calls one use case, and formats output.

Errors are one line on stderr and a non-zero exit; `--json` prints data for scripts.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from digest.bootstrap import Services, build
from digest.db import DatabaseError, current_revision, upgrade
from digest.settings import Settings, SettingsError, load_from_environment

app = typer.Typer(
    help="Trending-papers email digest: ingest, rank, render and send a daily digest.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
subscribers_app = typer.Typer(help="Manage the list.", no_args_is_help=True)
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
    """Migrate the database to the newest schema (the Procfile's release step)."""
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
    """Print the schema revision of the database."""
    Console().print(current_revision(state(ctx).services.engine) or "not initialised")


# ---------------------------------------------------------------- subscribers


@subscribers_app.command("add")
def subscribers_add(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="Address to add."),
    interests: str = typer.Option("", "--interests", help="Free-text interests."),
    category: list[str] = typer.Option([], "--category", help="arXiv category (repeatable)."),
    seed_paper: list[str] = typer.Option([], "--seed-paper", help="arXiv id (repeatable)."),
    tz: str = typer.Option("UTC", "--tz", help="IANA timezone."),
    hour: int = typer.Option(7, "--hour", min=0, max=23, help="Local delivery hour."),
    confirmed: bool = typer.Option(False, "--confirmed", help="Consent was gathered elsewhere."),
) -> None:
    """Add one subscriber (pending unless --confirmed).

    \b
    Example:
        digest subscribers add ada@example.com --interests "quantization" --confirmed
    """
    from email_validator import EmailNotValidError, validate_email

    from digest.db import session_scope
    from digest.store.subscribers import SubscriberError, add_subscriber

    try:
        address = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        fail(f"{email!r}: {exc}")
    services = state(ctx).services
    try:
        with session_scope(services.engine) as session:
            add_subscriber(
                session,
                email=address,
                interests=interests,
                categories=category,
                seed_papers=seed_paper,
                timezone=tz,
                delivery_hour=hour,
                confirmed=confirmed,
            )
    except SubscriberError as exc:
        fail(str(exc))
    Console().print(f"Added {address} ({'active' if confirmed else 'pending'}).", highlight=False)


@subscribers_app.command("list")
def subscribers_list(
    ctx: typer.Context,
    status: str | None = typer.Option(None, "--status", help="Only this status."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
) -> None:
    """List subscribers."""
    from sqlmodel import Session

    from digest.store.subscribers import list_subscribers

    with Session(state(ctx).services.engine) as session:
        rows = list_subscribers(session, status=status)
        if as_json:
            for row in rows:
                _print_json(row.model_dump())
            return
        table = Table("email", "status", "interests", "tz", "hour")
        for row in rows:
            table.add_row(
                row.email, row.status, row.interests[:60], row.timezone, str(row.delivery_hour)
            )
        Console().print(table)


# ---------------------------------------------------------------- ranking and sending


@app.command()
def rank(
    ctx: typer.Context,
    papers: Path | None = typer.Option(None, "--papers", help="Candidates, JSONL."),
    interests: str | None = typer.Option(None, "--interests", help="One profile's interests."),
    like: list[str] = typer.Option([], "--like", help="Liked paper id (repeatable)."),
    dislike: list[str] = typer.Option([], "--dislike", help="Disliked paper id (repeatable)."),
    profiles: Path | None = typer.Option(None, "--profiles", help="Profiles, JSONL."),
    top: int = typer.Option(10, "--top", min=1, help="Papers per profile."),
    as_json: bool = typer.Option(True, "--json/--table", help="JSON lines (default)."),
) -> None:
    """Rank candidate papers for one profile or a batch of profiles.

    \b
    Example:
        digest rank --papers papers.jsonl --interests "sparse attention" --top 5 --json
    """
    from digest.rankfile import RankInputError, read_profiles, run_rank

    if profiles is None and interests is None and not like:
        fail("give --interests, --like or --profiles")
    try:
        if papers is not None:
            from digest.digests import params_for

            # Ranking a file signs nothing: no DIGEST_SECRET_KEY needed.
            try:
                settings = load_from_environment(
                    state(ctx).config, state(ctx).overrides, require_secret=False
                ).ranking
            except SettingsError as exc:
                fail(str(exc), 2)
            run_rank(
                papers,
                interests=interests,
                like=tuple(like),
                dislike=tuple(dislike),
                profiles_path=profiles,
                top=top,
                out=sys.stdout,
                params=params_for(settings),
                text_backend=settings.text_backend,
                semantic_weight=settings.semantic_weight,
            )
            return
        from digest.previews import rank_stored
        from digest.ranking import Profile

        batch = (
            read_profiles(profiles)
            if profiles is not None
            else [
                Profile(
                    user="cli", interests=interests or "", like=tuple(like), dislike=tuple(dislike)
                )
            ]
        )
    except RankInputError as exc:
        fail(str(exc))
    ranked = rank_stored(state(ctx).services, batch, top=top)
    for profile, picks in zip(batch, ranked, strict=True):
        _print_json(
            {
                "user": profile.user,
                "ranked": [{"id": p.id, "score": round(p.score, 6), "why": p.why} for p in picks],
            }
        )


@app.command()
def send(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Plan and count, send nothing."),
    due_only: bool = typer.Option(False, "--due-only", help="Only subscribers whose hour came."),
) -> None:
    """Send today's edition to every active subscriber who has not had it.

    \b
    Example:
        digest send --dry-run
    """
    from digest.editions import plan_edition, send_edition
    from digest.models import utcnow
    from digest.takeover import held_claims_message

    st = state(ctx)
    now = utcnow()
    edition, planned = plan_edition(
        st.services, edition_date=now.date(), now=now, due_only=due_only
    )
    if dry_run:
        report = asyncio.run(send_edition(st.services, edition, now=now, dry_run=True))
    else:
        report = _send_with_progress(st.services, edition, now)
    table = Table(
        "edition",
        "planned",
        "sent",
        "deferred",
        "failed",
        "suppressed",
        "skipped",
        "seconds",
        "msg/s",
    )
    table.add_row(
        str(edition.edition_date),
        str(planned if not dry_run else report.planned),
        str(report.sent),
        str(report.deferred),
        str(report.failed),
        str(report.suppressed),
        str(report.skipped),
        f"{report.seconds:.1f}",
        f"{report.rate:.1f}",
    )
    Console().print(table)
    if report.paused:
        fail("sending is paused (complaint rate); `digest resume-sending` lifts the pause")
    if report.relay_down:
        fail("the SMTP relay is unreachable; unsent messages stay queued for the next run")
    if report.held:
        fail(held_claims_message(report))


def _send_with_progress(services: Services, edition: Any, now: datetime) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
    from sqlmodel import Session

    from digest.editions import send_edition
    from digest.store import deliveries as ledger

    with Session(services.engine) as session:
        counts = ledger.state_counts(session, edition.id)
    total = sum(counts.get(state, 0) for state in (*ledger.OPEN_STATES, "claimed"))
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("Sending", total=total)
        return asyncio.run(
            send_edition(
                services,
                edition,
                now=now,
                progress=lambda n: progress.advance(task, n),
                wait_for_others_s=services.settings.delivery.claim_wait_s,
            )
        )


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
    from digest.previews import preview_digest

    try:
        digest = preview_digest(state(ctx).services, email=email)
    except LookupError as exc:
        fail(str(exc))
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
    """Send one real digest now, marked as a test; the delivery ledger is not touched."""
    from email_validator import EmailNotValidError, validate_email

    from digest.previews import send_test_digest

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
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List size, last fetch per source, last editions and their delivery outcomes."""
    from digest.reports import collect_stats

    data = collect_stats(state(ctx).services)
    if as_json:
        _print_json(data)
        return
    console = Console()
    console.print(f"Subscribers: {data['subscribers']}", highlight=False)
    console.print(f"Papers stored: {data['papers']}", highlight=False)
    week = data["last_7_days"]
    console.print(
        f"Last 7 days: {week['sent']} sent, hard bounces {week['hard_bounce_rate']:.2%}, "
        f"soft bounces {week['soft_bounce_rate']:.2%}, complaints {week['complaint_rate']:.3%}",
        highlight=False,
    )
    table = Table("source", "last fetch", "status", "error")
    for row in data["sources"]:
        table.add_row(
            row["source"],
            str(row["last_fetch_at"]),
            str(row["last_status"]),
            (row["last_error"] or "")[:60],
        )
    console.print(table)
    table = Table("edition", "status", "deliveries")
    for row in data["editions"]:
        table.add_row(str(row["date"]), row["status"], json.dumps(row["deliveries"]))
    console.print(table)


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
    """
    import logging

    from digest.leases import WorkerLockError
    from digest.scheduler import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        code = run_worker(state(ctx).services, name=name, run_scheduler=not send_only)
    except WorkerLockError as exc:
        fail(str(exc))
    raise typer.Exit(code)


@app.command()
def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Default: web.host."),
    port: int | None = typer.Option(None, "--port", help="Default: web.port."),
) -> None:
    """Run the web app (subscribe, confirm, manage, unsubscribe). It never runs the scheduler.

    \b
    Example:
        digest serve --host 0.0.0.0 --port 8000
    """
    import uvicorn

    from digest.logs import redact_server_logs
    from digest.web import create_app

    services = state(ctx).services
    host = host or services.settings.web.host
    port = port or services.settings.web.port
    # One process: the app's confirmation-mail threads and rate limits live in the database,
    # so more capacity means more `digest serve` processes behind a proxy, not --workers.
    config = uvicorn.Config(
        create_app(services), host=host, port=port, proxy_headers=False, log_level="info"
    )
    redact_server_logs(services.settings)  # after Config set up uvicorn's loggers
    uvicorn.Server(config).run()


def _register_plugins() -> None:
    from digest.commands import admin as admin_commands
    from digest.commands import fetch as fetch_commands

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
    main()
