"""CLI commands of ingestion: `digest fetch` and `digest papers list|show`.

Thin edges: parse options, call digest.usecases.ingest / digest.store.papers, print a table or JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from digest.commands.output import Col, console, minute, print_record, print_table
from digest.commands.readable import DigestTyper
from digest.sources import KINDS

papers_app = DigestTyper(
    help="Stored papers.\n\n\b\nExample:\n    digest papers list --since 2026-06-01",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 1) -> NoReturn:
    Console(stderr=True).print(f"[red]Error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _services(ctx: typer.Context) -> Any:
    """The services of the lead's CLI State (ctx.obj), with the schema checked."""
    from digest.db import current_revision

    services = ctx.obj.services
    try:
        revision = current_revision(services.engine)
    except Exception as exc:  # an unreachable database is a one-line error, not a traceback
        _fail(f"database unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", 2)
    if revision is None:
        _fail("database not initialised: run `digest init` first", 2)
    return services


def parse_since(value: str | None) -> datetime | None:
    """A --since value (YYYY-MM-DD or ISO datetime; naive means UTC) as aware UTC, else None."""
    if not value:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"--since {value!r}: expected YYYY-MM-DD or an ISO date-time")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


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
    from digest.usecases.ingest import fetch_sources, ingest_file

    start = parse_since(since)
    if file is not None and fmt is None:
        _fail(f"--file needs --format ({' | '.join(KINDS)})")
    if fmt is not None and fmt not in KINDS:
        _fail(f"--format {fmt!r}: expected one of {', '.join(KINDS)}")
    if fmt is not None and file is None:
        _fail("--format is only used with --file")
    if file is not None and not file.is_file():
        _fail(f"--file {file}: no such file")
    services = _services(ctx)
    console = Console(stderr=as_json)
    if file is not None:
        assert fmt is not None
        name = file_source_name(services.settings, fmt, source)
        reports = [ingest_file(services.engine, file, kind=fmt, source=name, since=start)]
    else:
        names = [s.name for s in services.settings.sources if s.enabled]
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=as_json or not console.is_terminal,
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

            reports = asyncio.run(
                fetch_sources(
                    services.settings,
                    services.engine,
                    source=source,
                    since=start,
                    http=services.http,
                    progress=progress,
                )
            )
    if source is None:
        _retry_seeds(services)
    if as_json:
        sys.stdout.write(json.dumps([_report_dict(r) for r in reports]) + "\n")
    else:
        print_table(SUMMARY, _summary_rows(reports))
    if reports and all(r.failed for r in reports):
        raise typer.Exit(1)


def _retry_seeds(services: Any) -> None:
    """Seed papers an earlier lookup could not fetch are tried again; a failure is one line."""
    from digest.usecases.seeds import retry_missing

    try:
        lookup = asyncio.run(retry_missing(services, http=services.http))
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


def paper_dict(paper: Any) -> dict[str, Any]:
    """Every stored field of a paper as JSON-ready values (datetimes as ISO strings)."""
    columns = type(paper).__table__.columns  # table order: id, key, arxiv_id, ...
    data = {c.name: getattr(paper, c.name) for c in columns}
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}


@papers_app.command("list")
def papers_list(
    ctx: typer.Context,
    since: str | None = typer.Option(None, "--since", help="Only papers first seen since."),
    as_json: bool = typer.Option(False, "--json", help="Every stored field, as a JSON list."),
) -> None:
    """List stored papers, newest first.

    \b
    Examples:
        digest papers list --since 2026-06-01
        digest papers list --json | jq '.[].title'
    """
    from digest.db import session_scope
    from digest.store.papers import list_papers

    start = parse_since(since)
    services = _services(ctx)
    with session_scope(services.engine) as session:
        papers = list_papers(session, since=start)
        rows = [paper_dict(p) for p in papers]
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    print_table(
        [
            Col("key"),
            Col("first seen"),
            Col("announce"),
            Col("upvotes", numeric=True),
            Col("sources"),
            Col("title", text=True),
        ],
        [
            (
                row["key"],
                minute(row["first_seen"]),
                row["announce"],
                "" if row["upvotes"] is None else row["upvotes"],
                ",".join(row["sources"]),
                row["title"],
            )
            for row in rows
        ],
    )
    if not as_json and console().is_terminal:
        console().print(f"{len(rows)} papers")


@papers_app.command("show")
def papers_show(
    ctx: typer.Context,
    paper_id: str = typer.Argument(..., metavar="ID", help="arXiv id (any form) or stored key."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show every stored field of one paper.

    \b
    Example:
        digest papers show 2606.12730
    """
    from digest.db import session_scope
    from digest.store.papers import get_paper

    services = _services(ctx)
    with session_scope(services.engine) as session:
        paper = get_paper(session, paper_id)
        row = paper_dict(paper) if paper else None
    if row is None:
        _fail(f"no stored paper {paper_id!r}")
    if as_json:
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    print_record(list(row.items()))


def register(app: typer.Typer) -> None:
    """Add `fetch` and the `papers` group to the CLI."""
    app.command("fetch")(fetch)
    app.add_typer(papers_app, name="papers")
