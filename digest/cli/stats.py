"""`digest stats` for people: counts in words, rates as percentages, times to the minute."""

from __future__ import annotations

from typing import Any

import typer

from digest.cli.context import state
from digest.cli.output import Col, console, counts, minute, percent, print_json, print_table
from digest.cli.readable import DigestTyper
from digest.usecases.reports import collect_stats

commands = DigestTyper()

SUBSCRIBER_ORDER = ("active", "paused", "pending", "unsubscribed", "bounced", "suppressed")
DELIVERY_ORDER = ("sent", "pending", "claimed", "deferred", "failed", "suppressed", "skipped")


@commands.command()
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
    data = collect_stats(state(ctx).services)
    if as_json:
        print_json(data)
        return
    print_stats(data)


def _rate(count: int, sent: int) -> str:
    return f"{percent(count, sent, digits=2)} ({count})"


def print_stats(data: dict[str, Any]) -> None:
    out = console()
    subscribers = data["subscribers"]
    total = sum(subscribers.values())
    out.print(f"Subscribers: {counts(subscribers, SUBSCRIBER_ORDER)} ({total:,} in all)")
    out.print(f"Papers stored: {data['papers']:,}")
    week = data["last_7_days"]
    sent = week["sent"]
    out.print(
        f"Last 7 days: {sent:,} digests sent; hard bounces {_rate(week['hard_bounces'], sent)}, "
        f"soft bounces {_rate(week['soft_bounces'], sent)}, "
        f"complaints {_rate(week['complaints'], sent)}",
        soft_wrap=not out.is_terminal,
    )
    out.print()
    out.print("Sources")
    print_table(
        [Col("source"), Col("last fetch"), Col("status"), Col("new", numeric=True),
         Col("error", text=True)],
        [
            (s["source"], minute(s["last_fetch_at"]), s["last_status"] or "-", s["new"],
             s["last_error"] or "")
            for s in data["sources"]
        ],
        out=out,
    )  # fmt: skip
    out.print()
    out.print("Editions")
    print_table(
        [Col("edition"), Col("status", text=True), Col("deliveries", text=True)],
        [(str(e["date"]), edition_status(e), counts(e["deliveries"], DELIVERY_ORDER))
         for e in data["editions"]],
        out=out,
    )  # fmt: skip


def edition_status(edition: dict[str, Any]) -> str:
    """The status, with the reason when there is one (a held edition says why it is held)."""
    note = edition.get("note")
    return f"{edition['status']}: {note}" if note else edition["status"]
