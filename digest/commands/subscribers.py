"""`digest subscribers add | list | confirm`: put people on the list the way the website does.

Without --confirmed, `add` sends the double opt-in mail itself; `confirm` is the operator's way
to activate someone whose consent was gathered elsewhere.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
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
    author: list[str] = typer.Option(
        [], "--author", help="Followed author, e.g. 'Anna V. Baeva' (repeatable)."
    ),
    tz: str = typer.Option("UTC", "--tz", help="IANA time zone, e.g. Europe/Paris."),
    hour: int = typer.Option(7, "--hour", min=0, max=23, help="Local delivery hour, 0-23."),
    confirmed: bool = typer.Option(
        False, "--confirmed", help="Consent was gathered elsewhere: add as active, send no mail."
    ),
    profile: Path | None = typer.Option(
        None,
        "--profile",
        help="Library to import: BibTeX, a Zotero CSV export, or arXiv ids / DOIs, one a line.",
    ),
    follow_frequent: bool = typer.Option(
        False,
        "--follow-frequent-authors",
        help="With --profile: also follow the authors the library names most often.",
    ),
) -> None:
    """Add one subscriber and mail them the confirmation link (active at once with --confirmed).

    \b
    Examples:
        digest subscribers add ada@example.org --interests "quantization"
        digest subscribers add ada@example.org --tz Europe/Paris --confirmed
        digest subscribers add ada@example.org --author "Anna V. Baeva" --author "M. Hajdušek"
        digest subscribers add ada@example.org --profile library.bib --follow-frequent-authors
    """
    from digest.db import session_scope
    from digest.sources.ids import normalize_arxiv_id
    from digest.store.subscribers import SubscriberError, add_subscriber
    from digest.usecases.operator_subscriptions import NewSubscriber, add_pending
    from digest.usecases.subscriptions import send_mail
    from digest.zones import check_zone

    address = _address(email)
    library = _read_profile(profile) if profile is not None else None
    seeds = []
    for raw in seed_paper:
        seed = normalize_arxiv_id(raw.strip())
        if seed is None:
            _fail(f"--seed-paper {raw!r}: not an arXiv id or link (e.g. 1706.03762)")
        seeds.append(seed)
    seed_paper = list(dict.fromkeys(seeds))
    authors = tuple(dict.fromkeys(" ".join(a.split()) for a in author if a.strip()))
    if any(len(a) > 100 for a in authors):
        _fail("--author: a name can be at most 100 characters")
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
                    authors=authors,
                    timezone=zone,
                    delivery_hour=hour,
                    confirmed=True,
                )
            out.print(f"Added {address} (active).")
            imported = _import_profile(services, address, library, follow_frequent)
            _fetch_seeds(services, [*seed_paper, *imported])
            return
        mail = add_pending(
            services,
            NewSubscriber(
                address, interests, tuple(category), tuple(seed_paper), zone, hour, authors
            ),
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
    imported = _import_profile(services, address, library, follow_frequent)
    _fetch_seeds(services, [*seed_paper, *imported])


def _read_profile(path: Path) -> bytes:
    """The library file's bytes; checked before anyone is added, so a bad path adds nobody."""
    from digest.profile_files import read_library

    try:
        data = path.read_bytes()
    except OSError as exc:
        _fail(f"--profile {path}: {exc.strerror or exc}")
    library = read_library(data)
    if library.error:
        _fail(f"--profile {path}: {library.error}")
    return data


def _import_profile(services: Any, address: str, data: bytes | None, follow: bool) -> list[str]:
    """Apply the library to the new subscriber; returns its seed papers (to fetch)."""
    if data is None:
        return []
    from sqlmodel import Session

    from digest.store.subscribers import get_by_email
    from digest.usecases.profile_imports import import_library

    with Session(services.engine) as session:
        subscriber_id = get_by_email(session, address).id
    library = import_library(services, subscriber_id, data).library
    out = console()
    out.print(library.summary(), soft_wrap=True)
    if library.offered_authors:
        if follow:
            from digest.usecases.following import follow as follow_authors

            followed = follow_authors(services, subscriber_id, library.offered_authors)
            out.print(f"Following the library's frequent authors: {'; '.join(followed)}.")
        else:
            out.print(
                f"Frequent authors, not followed (add --follow-frequent-authors to follow them): "
                f"{'; '.join(library.offered_authors)}.",
                soft_wrap=True,
            )
    return library.seeds


def _fetch_seeds(services: Any, seeds: list[str]) -> None:
    """Fetch the seed papers not stored yet; a failure is one line, the profile keeps them."""
    if not seeds:
        return
    from digest.usecases.seeds import fetch_missing_now

    _report_seeds(fetch_missing_now(services, seeds))


def _report_seeds(lookup: Any) -> None:
    if lookup.fetched:
        console().print(f"Fetched {len(lookup.fetched)} seed paper(s) from arXiv.")
    message = lookup.message()
    if message:
        console(stderr=True).print(f"Warning: {message}.", soft_wrap=True)


def subscribers_confirm(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="Address of a pending subscriber."),
) -> None:
    """Activate a pending subscriber whose consent you gathered yourself (recorded as such).

    \b
    Example:
        digest subscribers confirm ada@example.org
    """
    from digest.usecases.operator_subscriptions import confirm_by_operator

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
