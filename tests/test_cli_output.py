"""CLI output a person can read: at 80 columns on a terminal, plain text in a pipe, JSON on
request; humane stats; honest fetch counts; the double opt-in from the command line; help."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from digest.cli import app
from digest.db import make_engine
from digest.models import Consent
from digest.smtpd.sink import SmtpSink
from digest.store import subscribers as subscriber_store

FIXTURES = Path(__file__).parent / "fixtures"
HF_DAILY = FIXTURES / "hf_daily_papers_api_limit30_2026-06-12.json"
BOX = set("│┃━─┏┓┗┛╭╮╰╯┡┩╇┳┻")
DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")


@pytest.fixture
def env(tmp_path: Path, smtp_sink: SmtpSink) -> dict[str, str]:
    environ = {
        "DIGEST_MODE": "dev",
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'out.db'}",
        "DIGEST_SMTP_HOST": smtp_sink.host,
        "DIGEST_SMTP_PORT": str(smtp_sink.port),
        # The suite's backend (conftest.py), in the subprocesses as in CliRunner's process.
        "DIGEST_RANKING__TEXT_BACKEND": "tfidf",
    }
    assert run(environ, "init").exit_code == 0
    return environ


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, list(args), env=env)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Shown:
    """What a terminal shows: the output without its colour and bold codes."""

    def __init__(self, result) -> None:
        self.exit_code = result.exit_code
        self.stdout = ANSI.sub("", result.stdout)
        self.output = ANSI.sub("", result.output)


def terminal(env: dict[str, str], *args: str, columns: int = 80) -> Shown:
    """As on a terminal `columns` wide (rich honours TTY_COMPATIBLE)."""
    return Shown(run({**env, "TTY_COMPATIBLE": "1", "COLUMNS": str(columns)}, *args))


def piped(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real program with stdout a pipe, as in `digest ... | grep`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "TTY_"))}
    return subprocess.run(
        [sys.executable, "-m", "digest.cli", *args],
        env={**clean, **env, "COLUMNS": "80"},
        capture_output=True,  # stdout is a pipe, not a terminal
        text=True,
        timeout=120,
        check=False,
    )


def hf_with_one_change(tmp_path: Path) -> Path:
    data = json.loads(HF_DAILY.read_bytes())
    data[0]["paper"]["upvotes"] += 3
    path = tmp_path / "hf-later.json"
    path.write_text(json.dumps(data))
    return path


def assert_readable_at(output: str, width: int) -> None:
    lines = output.splitlines()
    assert lines, "no output"
    assert max(len(line) for line in lines) <= width, output
    assert "…" not in output, output  # nothing cut


# --- at 80 columns on a terminal ------------------------------------------------------------


def test_tables_fit_80_columns_and_never_cut_a_date_or_an_id(env, smtp_sink) -> None:
    fetched = terminal(env, "fetch", "--file", str(HF_DAILY), "--format", "hf-daily")
    run(env, "subscribers", "add", "ada@example.org", "--interests", "agents", "--confirmed")
    sent = terminal(env, "send", "--all-now")
    papers = terminal(env, "papers", "list")
    editions = terminal(env, "editions", "list")
    stats = terminal(env, "stats")

    for result in (fetched, sent, papers, editions, stats):
        assert result.exit_code == 0, result.output
        assert_readable_at(result.stdout, 80)
    assert "hf-daily" in fetched.stdout  # the whole source name, by the format
    assert re.search(r"\bedition\s+\d{4}-\d\d-\d\d\b", sent.stdout)  # vertical, whole date
    assert "2606.12730" in papers.stdout and DATE_TIME.search(papers.stdout)
    assert "sent" in editions.stdout and re.search(r"\d{4}-\d\d-\d\d", editions.stdout)


def test_a_wide_terminal_gets_one_table(env) -> None:
    result = terminal(env, "fetch", "--file", str(HF_DAILY), "--format", "hf-daily", columns=140)

    assert result.exit_code == 0
    header = next(line for line in result.stdout.splitlines() if "source" in line)
    for column in ("status", "fetched", "new", "changed", "unchanged"):
        assert column in header


# --- in a pipe ----------------------------------------------------------------------------------


def test_piped_output_is_plain_aligned_text(env) -> None:
    fetched = piped(env, "fetch", "--file", str(HF_DAILY), "--format", "hf-daily")
    papers = piped(env, "papers", "list")

    for result in (fetched, papers):
        assert result.returncode == 0, result.stderr
        assert not BOX & set(result.stdout), result.stdout
        assert "…" not in result.stdout
    header, row = fetched.stdout.splitlines()[:2]
    assert header.split() == [
        "source", "status", "fetched", "new", "changed", "unchanged", "skipped", "seconds",
        "reason",
    ]  # fmt: skip
    assert row.split()[:7] == ["hf-daily", "ok", "30", "30", "0", "0", "0"]
    lines = papers.stdout.splitlines()
    assert lines[0].startswith("key") and len(lines) == 31  # header + every paper, no footer
    start = lines[0].index("first seen")  # aligned: every date starts under its header
    assert all(DATE_TIME.match(line[start:]) for line in lines[1:])


def test_json_on_request(env) -> None:
    fetched = run(env, "fetch", "--file", str(HF_DAILY), "--format", "hf-daily", "--json")
    run(env, "subscribers", "add", "ada@example.org", "--interests", "agents", "--confirmed")
    sent = run(env, "send", "--dry-run", "--json")

    assert json.loads(fetched.stdout)[0]["new"] == 30
    outcome = json.loads(sent.stdout)
    assert outcome["dry_run"] is True and re.fullmatch(r"\d{4}-\d\d-\d\d", outcome["edition"])


# --- stats, rank --------------------------------------------------------------------------------


def test_stats_speak_in_words_percentages_and_minutes(env) -> None:
    run(env, "fetch", "--file", str(HF_DAILY), "--format", "hf-daily")
    run(env, "subscribers", "add", "ada@example.org", "--interests", "agents", "--confirmed")
    run(env, "subscribers", "add", "bob@example.org", "--confirmed")
    run(env, "subscribers", "remove", "bob@example.org", "--yes")
    run(env, "send", "--all-now")

    result = piped(env, "stats")

    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "{" not in out and "'" not in out  # no Python dict, no JSON in a cell
    assert not re.search(r"\d\d:\d\d:\d\d", out)  # to the minute, no seconds or microseconds
    assert "Subscribers: 1 active" in out
    assert re.search(r"hard bounces 0\.00 % \(0\)", out)
    assert DATE_TIME.search(out)
    assert re.search(r"\d{4}-\d\d-\d\d\s+\S+\s+1 sent", out)


def test_rank_table_is_a_table(env) -> None:
    run(env, "fetch", "--file", str(HF_DAILY), "--format", "hf-daily")

    table = piped(env, "rank", "--interests", "language model agents", "--top", "3", "--table")
    lines = run(env, "rank", "--interests", "language model agents", "--top", "3")

    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split()[:4] == ["user", "#", "id", "score"]
    assert len(rows) == 4 and not table.stdout.lstrip().startswith("{")
    ids = [p["id"] for p in json.loads(lines.stdout)["ranked"]]
    assert [row.split()[2] for row in rows[1:]] == ids


# --- fetch --file names and counts --------------------------------------------------------------


def test_fetch_file_is_the_configured_source_and_counts_honestly(env, tmp_path) -> None:
    first = run(env, "fetch", "--file", str(HF_DAILY), "--format", "hf-daily", "--json")
    again = run(env, "fetch", "--file", str(hf_with_one_change(tmp_path)), "--format",
                "hf-daily", "--json")  # fmt: skip
    named = run(env, "fetch", "--file", str(HF_DAILY), "--format", "hf-daily", "--source",
                "hf-mirror", "--json")  # fmt: skip
    doctor = run(env, "doctor")

    report = json.loads(first.stdout)[0]
    assert (report["source"], report["new"], report["changed"]) == ("hf-daily", 30, 0)
    report = json.loads(again.stdout)[0]
    assert (report["new"], report["changed"], report["unchanged"]) == (0, 1, 29)
    assert json.loads(named.stdout)[0]["source"] == "hf-mirror"
    assert "ok   source hf-daily:" in doctor.output


# --- subscribers from the command line ----------------------------------------------------------


def test_add_without_confirmed_mails_the_confirmation_link(env, smtp_sink) -> None:
    added = run(env, "subscribers", "add", "ada@example.org", "--interests", "agents")

    assert added.exit_code == 0, added.output
    assert "confirmation mail was sent" in added.stdout
    [mail] = smtp_sink.messages
    assert mail.recipients == ["ada@example.org"]
    body = message_from_bytes(mail.data).get_payload(0).get_payload(decode=True).decode()
    assert "/confirm/" in body
    with Session(make_engine(env["DIGEST_DATABASE_URL"])) as session:
        subscriber = subscriber_store.get_by_email(session, "ada@example.org")
        assert subscriber is not None and subscriber.status == "pending"
        consent = session.exec(select(Consent).where(Consent.subscriber_id == subscriber.id)).one()
        assert consent.form_version == "operator-cli" and consent.confirmed_at is None


def test_confirm_activates_a_pending_subscriber(env) -> None:
    run(env, "subscribers", "add", "ada@example.org")

    confirmed = run(env, "subscribers", "confirm", "ada@example.org")
    again = run(env, "subscribers", "confirm", "ada@example.org")
    unknown = run(env, "subscribers", "confirm", "nobody@example.org")

    assert confirmed.exit_code == 0 and "ada@example.org is active" in confirmed.stdout
    assert again.exit_code == 0 and "active already" in again.stdout
    assert unknown.exit_code == 1 and len(unknown.stderr.strip().splitlines()) == 1
    listed = run(env, "subscribers", "list", "--json")
    assert json.loads(listed.stdout)["status"] == "active"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["--tz", "Factory"], "unknown time zone 'Factory'"),
        (["--tz", "localtime"], "unknown time zone 'localtime'"),
        (["--hour", "25"], "--hour"),
        (["--hour", "x"], "--hour"),
    ],
)
def test_bad_zone_or_hour_is_one_line(env, smtp_sink, args, needle) -> None:
    result = run(env, "subscribers", "add", "ada@example.org", *args)

    assert result.exit_code != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr
    assert not BOX & set(result.stderr)
    assert smtp_sink.messages == []
    assert json.loads(run(env, "subscribers", "list", "--json").stdout or "null") is None


# --- help -----------------------------------------------------------------------------------------

COMMANDS = [
    [], ["db"], ["subscribers"], ["papers"], ["editions"],
    ["demo"], ["init"], ["db", "upgrade"], ["db", "current"], ["fetch"], ["papers", "list"],
    ["papers", "show"], ["subscribers", "add"], ["subscribers", "list"],
    ["subscribers", "confirm"], ["subscribers", "show"], ["subscribers", "remove"],
    ["subscribers", "import"], ["subscribers", "export"], ["rank"], ["preview"], ["send-test"],
    ["send"], ["editions", "list"], ["editions", "show"], ["stats"], ["doctor"], ["inbound"],
    ["resume-sending"], ["worker"], ["serve"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "digest")
def test_every_help_has_an_example_and_readable_value_names(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"})

    assert result.exit_code == 0
    assert re.search(r"Examples?: *\n\s+(\S+=\S+ )?digest ", result.output), result.output
    assert not re.search(r"<(str|bool|int|path|list)", result.output), result.output
    assert not re.search(r"\{[a-z_]+\}", result.output), result.output


def test_flags_show_no_value_and_options_name_theirs() -> None:
    result = CliRunner().invoke(app, ["subscribers", "add", "--help"], env={"COLUMNS": "100"})

    assert re.search(r"--tz\s+ZONE", result.output)
    assert re.search(r"--confirmed\s+Consent", result.output)
    assert re.search(r"subscribers add \[OPTIONS\] EMAIL *\n", result.output)
