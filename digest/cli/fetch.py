"""`digest fetch`: ingest papers now, and a table (or JSON) of what each source gave."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from digest.cli.context import fail, parse_since, state
from digest.cli.output import Col, print_table
from digest.cli.readable import DigestTyper
from digest.sources import KINDS

commands = DigestTyper()


SUMMARY = [
    Col("source"),
    Col("status"),
    Col("fetched", numeric=True),
    Col("new", numeric=True),
    Col("changed", numeric=True),
    Col("unchanged", numeric=True),
    Col("skipped", numeric=True),
    Col("seconds", numeric=True),
    Col("reason", text=True),
]


def _summary_rows(reports: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (
            r.source,
            r.status,
            r.fetched,
            r.new,
            r.changed,
            r.unchanged,
            r.skipped,
            f"{r.seconds:.2f}",
            r.error or "",
        )
        for r in reports
    ]


def file_source_name(settings: Any, kind: str, given: str | None) -> str:
    """The source a recorded file is ingested as: --source, else the one configured source of
    that format (so `doctor` sees it fetched), else the format's name."""
    if given:
        return given
    same_kind = [s.name for s in settings.sources if s.kind == kind]
    return same_kind[0] if len(same_kind) == 1 else kind


@commands.command("fetch")
def fetch(
    ctx: typer.Context,
    source: str | None = typer.Option(
        None, "--source", help="Fetch only this configured source; with --file, the source's name."
    ),
    file: Path | None = typer.Option(None, "--file", help="Ingest one recorded document instead."),
    fmt: str | None = typer.Option(
        None, "--format", help=f"Format of --file: {' | '.join(KINDS)}."
    ),
    since: str | None = typer.Option(None, "--since", help="Backfill from this date (YYYY-MM-DD)."),
    as_json: bool = typer.Option(False, "--json", help="Print the per-source reports as JSON."),
) -> None:
    """Ingest papers now, from the configured sources or from one recorded file.

    \b
    Examples:
        digest fetch
        digest fetch --source arxiv-cs
        digest fetch --file feed.xml --format arxiv-rss --source arxiv-cs
    """
    from digest.usecases.ingest import ingest_file

    start = parse_since(since)
    _check_file_options(file, fmt)
    services = state(ctx).services
    if file is not None and fmt is not None:
        name = file_source_name(services.settings, fmt, source)
        reports = [ingest_file(services, file, kind=fmt, source=name, since=start)]
    else:
        reports = _fetch_with_progress(services, source, start, quiet=as_json)
    if source is None:
        _retry_seeds(services)
    if as_json:
        sys.stdout.write(json.dumps([_report_dict(r) for r in reports]) + "\n")
    else:
        print_table(SUMMARY, _summary_rows(reports))
    if reports and all(r.failed for r in reports):
        raise typer.Exit(1)


def _check_file_options(file: Path | None, fmt: str | None) -> None:
    if file is not None and fmt is None:
        fail(f"--file needs --format ({' | '.join(KINDS)})")
    if fmt is not None and fmt not in KINDS:
        fail(f"--format {fmt!r}: expected one of {', '.join(KINDS)}")
    if fmt is not None and file is None:
        fail("--format is only used with --file")
    if file is not None and not file.is_file():
        fail(f"--file {file}: no such file")


def _fetch_with_progress(
    services: Any, source: str | None, since: datetime | None, *, quiet: bool
) -> list[Any]:
    """Fetch the configured sources with a spinner per source on a terminal (on stderr and
    off when `quiet`: --json keeps stdout for the data)."""
    from digest.usecases.ingest import fetch_sources

    console = Console(stderr=quiet)
    names = [s.name for s in services.settings.sources if s.enabled]
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=quiet or not console.is_terminal,
    ) as bar:
        tasks = {n: bar.add_task(n, total=1) for n in names if source in (None, n)}

        def progress(report: Any, stage: str) -> None:
            task = tasks.get(report.source)
            if task is None:
                return
            if stage == "done":
                bar.update(task, completed=1, description=f"{report.source}: {report.status}")
            else:
                bar.update(task, description=f"{report.source}: fetching")

        return asyncio.run(fetch_sources(services, source=source, since=since, progress=progress))


def _retry_seeds(services: Any) -> None:
    """Seed papers an earlier lookup could not fetch are tried again; a failure is one line."""
    from digest.usecases.seeds import retry_missing

    try:
        lookup = asyncio.run(retry_missing(services))
    except Exception as exc:  # never costs the fetch its report
        message = f"seed papers not looked up again ({type(exc).__name__})"
    else:
        message = lookup.message()
    if message:
        Console(stderr=True).print(f"Warning: {message}.", highlight=False, soft_wrap=True)


def _report_dict(report: Any) -> dict[str, Any]:
    fields = (
        "source",
        "kind",
        "status",
        "fetched",
        "new",
        "changed",
        "unchanged",
        "skipped",
        "errors",
        "error",
        "warnings",
        "seconds",
        "http_status",
        "requests",
    )
    return {name: getattr(report, name) for name in fields}
