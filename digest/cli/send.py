"""`digest send`: send the current edition now, and say in one line what was done or why not."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

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
    from digest.usecases.send_now import send_now

    st = state(ctx)
    if not dry_run:
        refuse_placeholders(st.settings)
    done = send_now(st.services, dry_run=dry_run, due_only=due_only, progress=_progress_bar)
    outcome = done.record()
    if as_json:
        print_json(outcome)
    else:
        # The record holds the counts; the summary follows as the last line, in words.
        hidden = ("dry_run", "summary") + (() if done.report.claims_held else ("claims_held",))
        print_record([(k.replace("_", " "), v) for k, v in outcome.items() if k not in hidden])
        out = console()
        out.print(done.summary, markup=False, soft_wrap=not out.is_terminal)
    if done.failure:
        fail(done.failure)


def refuse_placeholders(settings: Settings) -> None:
    """Exit with one line if production settings still hold shipped example values."""
    from digest.usecases.send_now import placeholder_refusal

    refusal = placeholder_refusal(settings)
    if refusal:
        fail(refusal)


@contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr, gone when done; yields "n more were sent"."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("Sending", total=total)
        yield lambda n: progress.advance(task, n)
