"""The admin CLI (Typer): the root app, its global options, and every command group on it.

Each command parses input, calls one use case, and formats output. Errors are one line on
stderr and a non-zero exit; `--json` prints data for scripts. The command modules know nothing
of this one: it imports them and adds their commands, in the order `digest --help` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from digest.cli import (
    database,
    demo,
    editions,
    fetch,
    health,
    inbound,
    papers,
    previews,
    rank,
    send,
    serve,
    stats,
    subscribers,
    worker,
)
from digest.cli.context import State, fail
from digest.cli.readable import DigestTyper
from digest.usecases.schema import database_failure

app = DigestTyper(
    help="Trending-papers email digest: ingest, rank, render and send a daily digest.\n\n"
    "\b\nExamples:\n    digest demo\n    digest --set ranking.papers_per_digest=5 send --dry-run",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (demo, database, previews, stats, worker, rank, send, serve, fetch, health, inbound):
    app.add_typer(module.commands)  # without a name: its commands join the root
app.add_typer(database.db_app, name="db")
app.add_typer(subscribers.subscribers_app, name="subscribers")
app.add_typer(papers.papers_app, name="papers")
app.add_typer(editions.editions_app, name="editions")


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


def main() -> None:
    try:
        app()
    except Exception as exc:
        said = database_failure(exc)
        if said is None:
            raise
        Console(stderr=True).print(f"[red]Error:[/red] database: {said}", highlight=False)
        raise SystemExit(1) from None
