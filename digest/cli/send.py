"""`digest send`: send the current edition now, and say in one line what was done or why not."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import typer
from rich.console import Console

from digest.bootstrap import Services
from digest.cli.context import fail, state
from digest.cli.output import console, print_json, print_record
from digest.cli.readable import DigestTyper
from digest.settings import Settings

commands = DigestTyper()


@commands.command()
def send(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Plan and count, send nothing."),
    due_only: bool = typer.Option(
        True,
        "--due-only/--all-now",
        help="Only subscribers whose local hour and day have come (the default, as the worker "
        "sends), or everyone who has not had today's edition, now.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Send today's edition to the subscribers due now (or everyone with --all-now).

    A subscriber whose window holds nothing new since their last digest gets no email;
    the last line says what was done, or why nothing was sent.

    \b
    Refuses to start in production mode while a setting still holds a shipped example value
    (example.com addresses, the sample postal address, a base URL on localhost).

    \b
    Examples:
        digest send --dry-run
        digest send --all-now
        digest send --json
    """
    from digest.models import utcnow
    from digest.usecases.editions import plan_edition, send_edition
    from digest.usecases.send_summary import summary_line
    from digest.usecases.takeover import held_claims_message

    st = state(ctx)
    if not dry_run:
        refuse_placeholders(st.settings)
    now = utcnow()
    edition, planned = plan_edition(
        st.services, edition_date=now.date(), now=now, due_only=due_only
    )
    if dry_run:
        report = asyncio.run(send_edition(st.services, edition, now=now, dry_run=True))
    else:
        report = _send_with_progress(st.services, edition, now)
    line = summary_line(
        report,
        edition_date=edition.edition_date,
        planned=planned,
        due_only=due_only,
        dry_run=dry_run,
    )
    outcome = {
        "edition": str(edition.edition_date),
        "planned": planned if not dry_run else report.planned,
        "sent": report.sent,
        "deferred": report.deferred,
        "failed": report.failed,
        "suppressed": report.suppressed,
        "skipped": report.skipped,
        "seconds": round(report.seconds, 1),
        "messages_per_s": round(report.rate, 1),
        "claims_held": report.claims_held,
        "dry_run": dry_run,
        "summary": line,
    }
    if as_json:
        print_json(outcome)
    else:
        # The record holds the counts; the summary follows as the last line, in words.
        hidden = ("dry_run", "summary") + (() if report.claims_held else ("claims_held",))
        print_record([(k.replace("_", " "), v) for k, v in outcome.items() if k not in hidden])
        out = console()
        out.print(line, markup=False, soft_wrap=not out.is_terminal)
    if report.paused:
        fail("sending is paused (complaint rate); `digest resume-sending` lifts the pause")
    if report.relay_down:
        fail("the SMTP relay is unreachable; unsent messages stay queued for the next run")
    if report.claims_held:
        fail(held_claims_message(report))


def refuse_placeholders(settings: Settings) -> None:
    """Exit with one line if production settings still hold shipped example values."""
    from digest.placeholders import production_placeholders

    found = production_placeholders(settings)
    if found:
        fail(
            "refusing to send in production mode with placeholder settings ("
            + ", ".join(p.variable for p in found)
            + "): `digest doctor` gives the fix for each"
        )


def _send_with_progress(services: Services, edition: Any, now: datetime) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from digest.usecases.editions import send_edition
    from digest.usecases.reports import deliveries_to_send

    total = deliveries_to_send(services, edition.id)
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
