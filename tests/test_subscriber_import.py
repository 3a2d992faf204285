"""Bulk list import: same verdicts as row by row, a constant number of statements per batch,
present, suppressed and repeated addresses left alone, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import event
from sqlmodel import Session, select

from digest import bootstrap
from digest.addresses import normalise_address
from digest.db import make_engine, upgrade
from digest.models import Subscriber, Suppression
from digest.settings import Settings
from digest.store import subscribers as subscriber_store
from digest.store import suppressions
from digest.usecases.subscriber_import import import_subscribers, read_import_csv

NOW = datetime(2026, 6, 12, 8, tzinfo=UTC)

ADDRESSES = [
    "ada@example.org",
    "Ada@Example.ORG",
    " a.b+c@x.co.uk ",
    "a..b@x.org",
    ".a@x.org",
    "a.@x.org",
    "a@b",
    "a@localhost",
    "a@x.test",
    "a@x.local",
    "a@-x.org",
    "a@x..org",
    '"q"@x.org',
    "a b@x.org",
    "a@x.org.",
    "Ada <ada@x.org>",
    "a@[1.2.3.4]",
    "a" * 65 + "@x.org",
    "a@" + "b" * 250 + ".org",
    "a@x_y.org",
    "a@XN--BCHER-KVA.example",
    "a@x.invalid",
    "@x.org",
    "a@",
    "a@@x.org",
    "a@exa mple.org",
    "a!#$%&'*+/=?^_`{|}~-@x.org",
]


def _reference(value: str) -> str:
    value = value.strip()
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        return f"error: {value!r}: {exc}"


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_fast_check_gives_the_library_verdict(address: str) -> None:
    try:
        ours = normalise_address(address)
    except ValueError as exc:
        ours = f"error: {exc}"
    # Asked twice: the second answer comes from the remembered domain.
    assert ours == _reference(address)
    try:
        assert normalise_address(address) == ours
    except ValueError as exc:
        assert f"error: {exc}" == ours


def _csv(path: Path, emails: list[str]) -> Path:
    lines = ["email,interests,categories,timezone,hour"]
    lines += [f"{e},robots,cs.RO cs.LG,Europe/Paris,9" for e in emails]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_batch_costs_a_few_statements_and_leaves_known_addresses_alone(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with Session(engine) as session:
        subscriber_store.add_subscriber(session, email="known@example.org", now=NOW)
        session.add(
            Suppression(
                email_hash=suppressions.email_hash("gone@example.org"),
                reason="unsubscribed",
                created_at=NOW,
            )
        )
        session.commit()
    emails = [f"reader{i}@example{i % 7}.org" for i in range(3000)]
    emails += ["known@example.org", "gone@example.org", "READER5@example5.org"]
    rows, errors = read_import_csv(_csv(tmp_path / "list.csv", emails))
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    services = bootstrap.build(Settings(mode="dev", database_url=database_url), engine=engine)
    report = import_subscribers(services, rows, confirmed=True, now=NOW, batch_rows=1000)

    assert errors == []
    assert (report.added, report.present, report.suppressed) == (3000, 2, 1)
    assert len(statements) <= 4 * 8, len(statements)  # row by row: thousands
    again = import_subscribers(services, rows, confirmed=True, now=NOW)
    assert (again.added, again.present, again.suppressed) == (0, 3002, 1)
    with Session(engine) as session:
        stored = session.exec(
            select(Subscriber).where(Subscriber.email == "reader42@example0.org")
        ).one()
        count = len(session.exec(select(Subscriber.id)).all())
    engine.dispose()
    assert count == 3001
    assert (stored.status, stored.categories, stored.timezone, stored.delivery_hour) == (
        "active",
        ["cs.RO", "cs.LG"],
        "Europe/Paris",
        9,
    )
    assert stored.confirmed_at == NOW and stored.authors == [] and stored.frequency == "daily"
