"""`digest resume-sending` and `digest doctor`: the operator's hand on the service's health."""

from __future__ import annotations

import typer
from rich.console import Console

from digest.cli.context import state
from digest.cli.readable import DigestTyper

commands = DigestTyper()


@commands.command("resume-sending")
def resume_sending(ctx: typer.Context) -> None:
    """Resume sending after a complaint-rate pause.

    \b
    Example:
        digest resume-sending
    """
    from digest.usecases.complaint_pause import resume

    closed = resume(state(ctx).services)
    Console().print("Sending resumed." if closed else "Sending was not paused.")


@commands.command("doctor")
def doctor(ctx: typer.Context) -> None:
    """Check settings, database, SMTP relay (without sending), DKIM and sources.

    Prints one line per check, with a fix for each failure; exits 1 if any check fails. In
    production mode every setting still at a shipped example value fails (example.com
    addresses, the sample postal address, a base URL on localhost).

    \b
    Example:
        DIGEST_CONFIG=/etc/digest/prod.toml digest doctor
    """
    from digest.usecases.doctor import run_checks

    checks = run_checks(state(ctx).settings)
    console = Console()
    for check in checks:
        mark = "[green]ok[/green]  " if check.ok else "[red]FAIL[/red]"
        fix = f" [bold]fix:[/bold] {check.fix}" if not check.ok and check.fix else ""
        console.print(f"{mark} {check.name}: {check.detail}{fix}", highlight=False, soft_wrap=True)
    failed = sum(not c.ok for c in checks)
    if failed:
        Console(stderr=True).print(f"{failed} check(s) failed", highlight=False)
        raise typer.Exit(1)
