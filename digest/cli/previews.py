"""`digest preview` and `digest send-test`: a digest seen before anyone gets it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer
from rich.console import Console

from digest.addresses import normalise_address
from digest.cli.context import fail, state
from digest.cli.readable import DigestTyper

commands = DigestTyper()


@commands.command()
def preview(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="Subscriber whose digest to render."),
    out: Path | None = typer.Option(None, "--out", help="Write the HTML here."),
    open_: bool = typer.Option(False, "--open", help="Open the HTML in a browser."),
) -> None:
    """Render today's digest for one subscriber without sending it.

    \b
    Example:
        digest preview ada@example.com --out ada.html --open
    """
    from digest.usecases.previews import preview_digest

    try:
        digest = preview_digest(state(ctx).services, email=email)
    except LookupError as exc:
        fail(str(exc))
    if not digest.picks:
        Console().print(
            f"Nothing new for {email} since their last digest: no email would be sent today.",
            highlight=False,
        )
        return
    if open_ and out is None:
        import tempfile

        out = Path(tempfile.mkdtemp(prefix="digest-preview-")) / "preview.html"
    if out is None:
        sys.stdout.write(digest.text)
        return
    out.write_text(digest.html, encoding="utf-8")
    Console().print(f"Wrote {out} ({digest.subject}).", highlight=False)
    if open_:
        import webbrowser

        webbrowser.open(out.resolve().as_uri())


@commands.command("send-test")
def send_test(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", help="Address to send the test digest to."),
    interests: str = typer.Option("", "--interests", help="Interests for the test profile."),
) -> None:
    """Send one real digest now, marked as a test; the delivery ledger is not touched.

    \b
    Example:
        digest send-test --to me@my-lab.org --interests "diffusion models"
    """
    from digest.usecases.previews import send_test_digest

    try:
        address = normalise_address(to)
    except ValueError as exc:
        fail(str(exc))
    outcome = asyncio.run(send_test_digest(state(ctx).services, to=address, interests=interests))
    if outcome.kind != "sent":
        fail(f"not sent: {outcome.kind} {outcome.code or ''} {outcome.text}".strip())
    Console().print(f"Sent a test digest to {address}.", highlight=False)
