"""`digest editions list | show`: editions and what came of their deliveries."""

from __future__ import annotations

import typer

from digest.cli.context import fail, state
from digest.cli.output import Col, counts, print_json, print_record, print_table
from digest.cli.readable import DigestTyper
from digest.cli.stats import DELIVERY_ORDER, edition_status
from digest.usecases.reports import find_edition, list_editions

editions_app = DigestTyper(
    help="Editions and their delivery outcomes.\n\n\b\nExample:\n    digest editions list",
    no_args_is_help=True,
)

COLUMNS = [
    Col("id", numeric=True),
    Col("date"),
    Col("status", text=True),
    Col("deliveries", text=True),
    Col("bounces/complaints", text=True),
]


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
    rows = list_editions(state(ctx).services, limit=limit)
    if as_json:
        print_json(rows)
        return
    print_table(
        COLUMNS,
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
    row = find_edition(state(ctx).services, ref.strip())
    if row is None:
        fail(f"no edition {ref!r} (give a date YYYY-MM-DD or an id)")
    if as_json:
        print_json(row)
        return
    print_record(
        [
            (key, counts(value, DELIVERY_ORDER) if isinstance(value, dict) else value)
            for key, value in row.items()
        ]
    )
