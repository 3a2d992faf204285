"""`digest demo`: the whole service offline, and what it did in a few lines."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from digest.cli.readable import DigestTyper

commands = DigestTyper()


@commands.command()
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
    nothing_new = (
        f" ({report.already_sent} already sent earlier today: nothing new to send.)"
        if report.sent == 0 and report.already_sent
        else ""
    )
    Console().print(
        f"Papers: {report.papers_seen} read from 3 recorded feeds, {report.papers_new} new.\n"
        f"Subscribers: {report.subscribers}.\n"
        f"Messages sent over SMTP to the local sink: {report.sent}.{nothing_new}\n"
        f"Open {report.index} ({len(report.messages)} raw messages in {out}/*.eml).\n"
        f"Took {report.seconds:.1f} s.",
        highlight=False,
    )
