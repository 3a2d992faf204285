"""Admin commands through Typer's runner: subscribers show/remove/import/export, editions,
resume-sending; help, happy path and bad input of each."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from digest.cli import app
from digest.db import make_engine
from digest.models import Delivery, Edition, SendingPause, utcnow
from digest.smtpd.sink import SmtpSink
from digest.store import subscribers as subscriber_store
from digest.store import suppressions
from digest.usecases.bounces import sending_paused


@pytest.fixture
def env(tmp_path: Path, smtp_sink: SmtpSink) -> dict[str, str]:
    environ = {
        "DIGEST_MODE": "dev",
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'admin.db'}",
        "DIGEST_SMTP_HOST": smtp_sink.host,
        "DIGEST_SMTP_PORT": str(smtp_sink.port),
    }
    assert run(environ, "init").exit_code == 0
    return environ


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, list(args), env=env)


@pytest.mark.parametrize(
    "command",
    [
        ["subscribers", "show"],
        ["subscribers", "remove"],
        ["subscribers", "import"],
        ["subscribers", "export"],
        ["editions", "list"],
        ["editions", "show"],
        ["resume-sending"],
        ["doctor"],
        ["inbound"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


CSV_TEXT = (
    "email,interests,categories,timezone,hour\n"
    "ada@example.org,sparse attention,cs.LG cs.CL,Europe/London,8\n"
    "not-an-address,x,,,\n"
    "grace@example.org,compilers,,UTC,7\n"
    "bad-tz@example.org,x,,Mars/Base,7\n"
    "bad-hour@example.org,x,,UTC,25\n"
    "jos\u00e9@example.org,x,,UTC,7\n"
    "ADA@example.org,duplicate in the file,,,\n"
)


def test_import_reports_bad_rows_by_line_and_round_trips(env, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(CSV_TEXT, encoding="utf-8")

    first = run(env, "subscribers", "import", str(source), "--confirmed")
    again = run(env, "subscribers", "import", str(source), "--confirmed")

    assert first.exit_code == 1  # some rows were refused...
    for line in (3, 5, 6, 7):
        assert f"line {line}:" in first.output
    assert "Imported 2 (active), 1 already on the list" in first.output  # ...the rest imported
    assert "Imported 0 (active), 3 already on the list" in again.output  # idempotent
    out = tmp_path / "out.csv"
    assert run(env, "subscribers", "export", str(out)).exit_code == 0
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["email"], r["categories"], r["timezone"], r["hour"]) for r in rows] == [
        ("ada@example.org", "cs.LG cs.CL", "Europe/London", "8"),
        ("grace@example.org", "", "UTC", "7"),
    ]
    # The export imports into a fresh database as the same list.
    env2 = {**env, "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'second.db'}"}
    assert run(env2, "init").exit_code == 0
    assert run(env2, "subscribers", "import", str(out), "--confirmed").exit_code == 0
    out2 = tmp_path / "out2.csv"
    assert run(env2, "subscribers", "export", str(out2)).exit_code == 0
    assert out2.read_text() == out.read_text()


def test_import_refuses_unusable_files(env, tmp_path: Path) -> None:
    missing = run(env, "subscribers", "import", str(tmp_path / "nope.csv"))
    no_column = tmp_path / "a.csv"
    no_column.write_text("email\nada@example.org\n")
    typo = tmp_path / "b.csv"
    typo.write_text("email,interests,houre\nada@example.org,x,7\n")
    for result in (missing, run(env, "subscribers", "import", str(no_column))):
        assert result.exit_code == 1
    assert "missing column(s) interests" in run(env, "subscribers", "import", str(no_column)).output
    assert "unknown column(s) houre" in run(env, "subscribers", "import", str(typo)).output


def test_show_and_remove(env) -> None:
    assert run(env, "subscribers", "add", "ada@example.org", "--confirmed").exit_code == 0

    shown = run(env, "subscribers", "show", "ada@example.org", "--json")
    table = run(env, "subscribers", "show", "ada@example.org")
    assert shown.exit_code == 0 and table.exit_code == 0
    assert json.loads(shown.stdout)["subscriber"]["status"] == "active"
    assert run(env, "subscribers", "remove", "ada@example.org", "--yes").exit_code == 0
    gone = run(env, "subscribers", "show", "ada@example.org")
    assert gone.exit_code == 1
    assert "suppressed: erased" in gone.output
    assert run(env, "subscribers", "remove", "ada@example.org", "--yes").exit_code == 1
    with Session(make_engine(env["DIGEST_DATABASE_URL"])) as session:
        assert subscriber_store.get_by_email(session, "ada@example.org") is None
        assert suppressions.is_suppressed(session, "ada@example.org")


def test_editions_list_and_show(env) -> None:
    engine = make_engine(env["DIGEST_DATABASE_URL"])
    with Session(engine) as session:
        subscriber = subscriber_store.add_subscriber(session, email="a@example.org", confirmed=True)
        edition = Edition(edition_date=date(2026, 11, 24), status="sent")
        session.add(edition)
        session.flush()
        session.add(
            Delivery(
                edition_id=edition.id, subscriber_id=subscriber.id, state="sent", sent_at=utcnow()
            )
        )
        session.commit()
    listed = run(env, "editions", "list", "--json")
    by_date = run(env, "editions", "show", "2026-11-24", "--json")
    by_id = run(env, "editions", "show", "1")
    assert listed.exit_code == 0 and by_date.exit_code == 0 and by_id.exit_code == 0
    assert json.loads(listed.stdout)[0]["deliveries"] == {"sent": 1}
    assert json.loads(by_date.stdout)["id"] == 1
    assert "2026-11-24" in run(env, "editions", "list").output
    bad = run(env, "editions", "show", "yesterday")
    assert bad.exit_code == 1 and "no edition" in bad.output


def test_resume_sending(env) -> None:
    engine = make_engine(env["DIGEST_DATABASE_URL"])
    assert "not paused" in run(env, "resume-sending").output
    with Session(engine) as session:
        session.add(SendingPause(reason="complaint rate 0.35%"))
        session.commit()
        assert sending_paused(session)
    result = run(env, "resume-sending")
    assert result.exit_code == 0 and "resumed" in result.output
    with Session(engine) as session:
        assert not sending_paused(session)


def test_commands_need_an_initialised_database(tmp_path: Path) -> None:
    env = {"DIGEST_MODE": "dev", "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    result = run(env, "editions", "list")
    assert result.exit_code == 2 and "digest init" in result.output


def test_send_test_touches_no_ledger_and_no_subscriber(env, smtp_sink: SmtpSink) -> None:
    """C3: `send-test --to ops@…` during a live issue mails only ops; the ledger is unchanged."""
    engine = make_engine(env["DIGEST_DATABASE_URL"])
    assert run(env, "subscribers", "add", "reader@example.org", "--confirmed").exit_code == 0
    with Session(engine) as session:
        before = len(session.exec(Delivery.__table__.select()).all())
    result = run(env, "send-test", "--to", "ops@example.org", "--interests", "graphs")
    assert result.exit_code == 0, result.output
    with Session(engine) as session:
        assert len(session.exec(Delivery.__table__.select()).all()) == before
    assert [m.recipients for m in smtp_sink.messages] == [["ops@example.org"]]
