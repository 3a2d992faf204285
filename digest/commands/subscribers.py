"""`digest subscribers add | list | confirm`: put people on the list the way the website does.

Without --confirmed, `add` sends the double opt-in mail itself; `confirm` is the operator's way
to activate someone whose consent was gathered elsewhere.
"""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from digest.commands.output import Col, console, print_json, print_table


def _fail(message: str, code: int = 1) -> Any:
    from digest.cli import fail

    fail(message, code)


def _address(email: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        _fail(f"{email!r}: {exc}")
        raise


def subscribers_add(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="Address to add."),
    interests: str = typer.Option("", "--interests", help="Free-text interests."),
    category: list[str] = typer.Option([], "--category", help="arXiv category (repeatable)."),
    seed_paper: list[str] = typer.Option([], "--seed-paper", help="arXiv id (repeatable)."),
    tz: str = typer.Option("UTC", "--tz", help="IANA time zone, e.g. Europe/Paris."),
    hour: int = typer.Option(7, "--hour", min=0, max=23, help="Local delivery hour, 0-23."),
    confirmed: bool = typer.Option(
        False, "--confirmed", help="Consent was gathered elsewhere: add as active, send no mail."
    ),
) -> None:
    """Add one subscriber and mail them the confirmation link (active at once with --confirmed).

    \b
    Examples:
        digest subscribers add ada@example.org --interests "quantization"
        digest subscribers add ada@example.org --tz Europe/Paris --confirmed
    """
    from digest.db import session_scope
    from digest.operator_subscriptions import NewSubscriber, add_pending
    from digest.store.subscribers import SubscriberError, add_subscriber
    from digest.subscriptions import send_mail
    from digest.zones import check_zone

    address = _address(email)
    try:
        zone = check_zone(tz)
    except ValueError as exc:
        _fail(f"--tz: {exc}")
    services = ctx.obj.services
    out = console()
    try:
        if confirmed:
            with session_scope(services.engine) as session:
                add_subscriber(
                    session,
                    email=address,
                    interests=interests,
                    categories=category,
                    seed_papers=seed_paper,
                    timezone=zone,
                    delivery_hour=hour,
                    confirmed=True,
                )
            out.print(f"Added {address} (active).")
            return
        mail = add_pending(
            services,
            NewSubscriber(address, interests, tuple(category), tuple(seed_paper), zone, hour),
        )
    except SubscriberError as exc:
        _fail(str(exc))
    outcome = asyncio.run(send_mail(services, mail))
    if outcome.kind != "sent":
        detail = f"{outcome.kind} {outcome.code or ''} {outcome.text}".split()
        _fail(
            f"added {address} (pending), but the confirmation mail was not sent "
            f"({' '.join(detail)}); once they agree, run `digest subscribers confirm {address}`"
        )
    out.print(
        f"Added {address} (pending): the confirmation mail was sent; they get digests once "
        "they click its link."
    )


def subscribers_confirm(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="Address of a pending subscriber."),
) -> None:
    """Activate a pending subscriber whose consent you gathered yourself (recorded as such).

    \b
    Example:
        digest subscribers confirm ada@example.org
    """
    from digest.operator_subscriptions import confirm_by_operator

    try:
        said = confirm_by_operator(ctx.obj.services, _address(email))
    except LookupError as exc:
        _fail(str(exc))
    console().print(f"Confirmed: {said}.")


def subscribers_list(
    ctx: typer.Context,
    status: str | None = typer.Option(None, "--status", help="Only this status, e.g. pending."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List subscribers with their status, time zone and delivery hour.

    \b
    Examples:
        digest subscribers list --status pending
        digest subscribers list --json | jq .email
    """
    from sqlmodel import Session

    from digest.store.subscribers import list_subscribers

    with Session(ctx.obj.services.engine) as session:
        rows = list_subscribers(session, status=status)
        if as_json:
            for row in rows:
                print_json(row.model_dump())
            return
        print_table(
            [
                Col("email"),
                Col("status"),
                Col("tz"),
                Col("hour", numeric=True),
                Col("interests", text=True),
            ],
            [(r.email, r.status, r.timezone, r.delivery_hour, r.interests) for r in rows],
        )


def register(subscribers_app: typer.Typer) -> None:
    subscribers_app.command("add")(subscribers_add)
    subscribers_app.command("list")(subscribers_list)
    subscribers_app.command("confirm")(subscribers_confirm)
