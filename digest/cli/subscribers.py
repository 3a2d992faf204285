"""`digest subscribers ...`: put people on the list the way the website does, look them up,
erase them, and move the whole list in and out as CSV.

Without --confirmed, `add` sends the double opt-in mail itself; `confirm` is the operator's way
to activate someone whose consent was gathered elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from digest.addresses import normalise_address
from digest.cli.context import fail, state
from digest.cli.output import Col, console, minute, print_json, print_record, print_table
from digest.cli.readable import DigestTyper
from digest.usecases import subscriber_records as records

subscribers_app = DigestTyper(
    help="Manage the list.\n\n\b\nExamples:\n    digest subscribers add ada@example.org"
    "\n    digest subscribers list --status pending",
    no_args_is_help=True,
)


def _address(email: str) -> str:
    try:
        return normalise_address(email)
    except ValueError as exc:
        fail(str(exc))


@subscribers_app.command("add")
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
    new = _new_subscriber(email, interests, category, seed_paper, author, tz, hour)
    library = _read_profile(profile) if profile is not None else None
    try:
        added = records.add(
            state(ctx).services,
            new,
            confirmed=confirmed,
            library=library,
            follow_frequent=follow_frequent,
        )
    except records.SubscriberError as exc:
        fail(str(exc))
    _report_added(added)


def _new_subscriber(
    email: str,
    interests: str,
    categories: list[str],
    seed_papers: list[str],
    authors: list[str],
    tz: str,
    hour: int,
) -> records.NewSubscriber:
    """The options of `add` checked and normalised, or a one-line error naming the bad one."""
    from digest.sources.ids import normalize_arxiv_id
    from digest.zones import check_zone

    address = _address(email)
    seeds = []
    for raw in seed_papers:
        seed = normalize_arxiv_id(raw.strip())
        if seed is None:
            fail(f"--seed-paper {raw!r}: not an arXiv id or link (e.g. 1706.03762)")
        seeds.append(seed)
    names = tuple(dict.fromkeys(" ".join(a.split()) for a in authors if a.strip()))
    if any(len(a) > 100 for a in names):
        fail("--author: a name can be at most 100 characters")
    try:
        zone = check_zone(tz)
    except ValueError as exc:
        fail(f"--tz: {exc}")
    return records.NewSubscriber(
        address, interests, tuple(categories), tuple(dict.fromkeys(seeds)), zone, hour, names
    )


def _read_profile(path: Path) -> bytes:
    """The library file's bytes; checked before anyone is added, so a bad path adds nobody."""
    from digest.profile_files import read_library

    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"--profile {path}: {exc.strerror or exc}")
    library = read_library(data)
    if library.error:
        fail(f"--profile {path}: {library.error}")
    return data


def _report_added(added: records.Added) -> None:
    out = console()
    if added.mail is None:
        out.print(f"Added {added.email} (active).")
    elif added.mail_failed:
        mail = added.mail
        detail = f"{mail.kind} {mail.code or ''} {mail.text}".split()
        fail(
            f"added {added.email} (pending), but the confirmation mail was not sent "
            f"({' '.join(detail)}); once they agree, run "
            f"`digest subscribers confirm {added.email}`"
        )
    else:
        out.print(
            f"Added {added.email} (pending): the confirmation mail was sent; they get digests "
            "once they click its link."
        )
    library = added.library
    if library is not None:
        out.print(library.summary(), soft_wrap=True)
        if added.followed is not None:
            out.print(f"Following the library's frequent authors: {'; '.join(added.followed)}.")
        elif library.offered_authors:
            out.print(
                "Frequent authors, not followed (add --follow-frequent-authors to follow them): "
                f"{'; '.join(library.offered_authors)}.",
                soft_wrap=True,
            )
    if added.seeds is not None:
        if added.seeds.fetched:
            out.print(f"Fetched {len(added.seeds.fetched)} seed paper(s) from arXiv.")
        message = added.seeds.message()
        if message:
            console(stderr=True).print(f"Warning: {message}.", soft_wrap=True)


@subscribers_app.command("list")
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
    rows = records.listing(state(ctx).services, status=status)
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


@subscribers_app.command("confirm")
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
        said = confirm_by_operator(state(ctx).services, _address(email))
    except LookupError as exc:
        fail(str(exc))
    console().print(f"Confirmed: {said}.")


@subscribers_app.command("show")
def subscribers_show(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="Address of the subscriber."),
    as_json: bool = typer.Option(False, "--json", help="Everything stored, as JSON."),
) -> None:
    """Show one subscriber: profile, ratings, consents and deliveries.

    \b
    Example:
        digest subscribers show ada@example.com --json
    """
    try:
        data = records.record(state(ctx).services, email)
    except LookupError as exc:
        fail(str(exc))
    if as_json:
        print_json(data)
        return
    pairs = [
        (key, minute(value) if key.endswith("_at") and value else value)
        for key, value in data["subscriber"].items()
    ]
    pairs += [
        ("ratings", len(data["ratings"])),
        ("consents", len(data["consents"])),
        ("deliveries", len(data["deliveries"])),
        ("suppression", data["suppression"] or "-"),
    ]
    print_record(pairs)


@subscribers_app.command("remove")
def subscribers_remove(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="Address to erase."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Erase a subscriber and every row about them; only a hashed suppression entry remains.

    \b
    Example:
        digest subscribers remove ada@example.com --yes
    """
    from digest.usecases.personal_data import erase

    services = state(ctx).services
    subscriber_id = records.find_id(services, email)
    if subscriber_id is None:
        fail(f"no subscriber {email!r}")
    if not yes and not typer.confirm(f"Erase {email} and all their data?"):
        fail("not erased")
    erase(services, subscriber_id)
    Console().print(f"Erased {email.strip().lower()}; the address stays suppressed.")


@subscribers_app.command("import")
def subscribers_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV with columns email,interests[,categories,...]."),
    confirmed: bool = typer.Option(
        False, "--confirmed", help="Consent was gathered elsewhere: add them as active."
    ),
) -> None:
    """Import subscribers from CSV (idempotent; bad rows are reported, the rest imported).

    \b
    Columns: email, interests, and optionally categories and seed_papers (space-separated),
    authors (followed authors, separated by ";"), timezone (IANA name) and hour (0-23, local
    delivery hour). Without --confirmed the rows are added as pending and get no mail until
    they confirm.
    Exit code 1 when any row was refused.

    \b
    Example:
        digest subscribers import list.csv --confirmed
    """
    from digest.usecases.subscriber_import import import_subscribers, read_import_csv

    try:
        rows, errors = read_import_csv(file)
    except ValueError as exc:
        fail(str(exc))
    services = state(ctx).services
    for error in errors:
        console(stderr=True).print(f"[yellow]Skipped[/yellow] {error}", soft_wrap=True)
    report = import_subscribers(services, rows, confirmed=confirmed)
    console().print(
        f"Imported {report.added} ({'active' if confirmed else 'pending'}), "
        f"{report.present} already on the list, {report.suppressed} suppressed, "
        f"{len(errors)} refused."
    )
    if errors:
        raise typer.Exit(1)


@subscribers_app.command("export")
def subscribers_export(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV file to write (import reads it back)."),
    status: list[str] = typer.Option(
        [], "--status", help="Only these statuses (default: active, paused, pending)."
    ),
) -> None:
    """Export subscribers as CSV in the format `import` reads.

    \b
    Example:
        digest subscribers export list.csv
    """
    from digest.subscriber_csv import format_rows
    from digest.usecases.subscriber_import import export_list

    records_ = export_list(state(ctx).services, status)
    try:
        file.write_text(format_rows(records_), encoding="utf-8", newline="")
    except OSError as exc:
        fail(f"{file}: {exc.strerror or exc}")
    console().print(f"Wrote {len(records_)} subscribers to {file}.")
