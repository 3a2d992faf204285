"""`digest papers list | show`: the stored papers, as a table or JSON."""

from __future__ import annotations

import json
import sys

import typer

from digest.cli.context import fail, parse_since, state
from digest.cli.output import Col, console, minute, print_record, print_table
from digest.cli.readable import DigestTyper
from digest.usecases.stored_papers import paper, papers_since

papers_app = DigestTyper(
    help="Stored papers.\n\n\b\nExample:\n    digest papers list --since 2026-06-01",
    no_args_is_help=True,
)

COLUMNS = [
    Col("key"),
    Col("first seen"),
    Col("announce"),
    Col("upvotes", numeric=True),
    Col("sources"),
    Col("title", text=True),
]


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
    start = parse_since(since)
    rows = papers_since(state(ctx).services, start)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    print_table(
        COLUMNS,
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
    if console().is_terminal:
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
    row = paper(state(ctx).services, paper_id)
    if row is None:
        fail(f"no stored paper {paper_id!r}")
    if as_json:
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    print_record(list(row.items()))
