"""The admin CLI through Typer's runner: help, happy paths, one-line errors."""

from __future__ import annotations

import email.policy
import json
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest.cli import app
from digest.smtpd.sink import SmtpSink

FIXTURES = Path(__file__).parent / "fixtures"
HF_DAILY = str(FIXTURES / "hf_daily_papers_api_limit30_2026-06-12.json")


@pytest.fixture
def env(tmp_path: Path, smtp_sink: SmtpSink) -> dict[str, str]:
    return {
        "DIGEST_MODE": "dev",
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "DIGEST_SMTP_HOST": smtp_sink.host,
        "DIGEST_SMTP_PORT": str(smtp_sink.port),
    }


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, list(args), env=env)


def test_help_lists_every_command_of_the_contract() -> None:
    result = CliRunner().invoke(app, ["--help"])

    assert result.exit_code == 0
    for command in (
        "demo",
        "init",
        "db",
        "fetch",
        "subscribers",
        "rank",
        "preview",
        "send-test",
        "send",
        "worker",
        "serve",
        "stats",
    ):
        assert command in result.output


def test_init_then_add_and_list_subscribers(env) -> None:
    assert run(env, "init").exit_code == 0
    added = run(
        env, "subscribers", "add", "Ada@Example.com", "--interests", "quantization", "--confirmed"
    )
    listed = run(env, "subscribers", "list", "--json")

    assert added.exit_code == 0, added.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["email"], r["status"]) for r in rows] == [("ada@example.com", "active")]


def test_a_bad_address_is_a_one_line_error(env) -> None:
    run(env, "init")

    result = run(env, "subscribers", "add", "not-an-address")

    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not-an-address" in result.stderr


def test_a_wrong_setting_is_a_one_line_error(env) -> None:
    result = run({**env, "DIGEST_SMTP_HOTS": "x"}, "init")

    assert result.exit_code == 2
    assert (
        result.stderr.strip() == "Error: DIGEST_SMTP_HOTS: unknown setting (environment variable)"
    )


def test_send_delivers_once_then_nothing(env, smtp_sink: SmtpSink) -> None:
    run(env, "init")
    fetched = run(env, "fetch", "--file", HF_DAILY, "--format", "hf-daily")
    run(env, "subscribers", "add", "ada@example.com", "--interests", "agents", "--confirmed")

    first = run(env, "send", "--all-now")
    second = run(env, "send", "--all-now")

    assert fetched.exit_code == 0, fetched.output
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0
    assert [m.recipients for m in smtp_sink.messages] == [["ada@example.com"]]
    # One line says what was done, and why the second run sent nothing.
    assert "Sent 1 digest for " in first.stdout
    assert "every active subscriber already had this edition" in second.stdout


def test_plain_send_is_due_only_and_says_why_it_sent_nothing(env, smtp_sink: SmtpSink) -> None:
    run(env, "init")
    run(env, "fetch", "--file", HF_DAILY, "--format", "hf-daily")
    # Due next hour: today's moment has not come, yesterday's lies before the edition began.
    hour = str((datetime.now(UTC).hour + 1) % 24)
    run(
        env,
        "subscribers",
        "add",
        "ada@example.com",
        "--interests",
        "agents",
        "--confirmed",
        "--tz",
        "UTC",
        "--hour",
        hour,
    )

    result = run(env, "send")

    assert result.exit_code == 0, result.output
    assert smtp_sink.messages == []
    assert "Sent nothing for " in result.stdout
    assert "no subscriber is due now" in result.stdout
    assert "--all-now" in result.stdout


def test_send_test_goes_out_marked_and_outside_the_ledger(env, smtp_sink: SmtpSink) -> None:
    run(env, "init")
    run(env, "fetch", "--file", HF_DAILY, "--format", "hf-daily")

    result = run(env, "send-test", "--to", "ops@example.com", "--interests", "robots")
    stats = json.loads(run(env, "stats", "--json").stdout)

    assert result.exit_code == 0, result.output
    [message] = smtp_sink.messages
    # Decoded: subjects now carry the top paper's title, often non-ASCII (issue 15).
    parsed = message_from_bytes(message.data, policy=email.policy.default)
    assert parsed["Subject"].startswith("[TEST]")
    assert parsed["X-Digest-Test"] == "yes"
    assert stats["editions"] == []


def test_preview_writes_html_and_sends_nothing(env, smtp_sink: SmtpSink, tmp_path: Path) -> None:
    run(env, "init")
    run(env, "fetch", "--file", HF_DAILY, "--format", "hf-daily")
    run(env, "subscribers", "add", "ada@example.com", "--interests", "video", "--confirmed")
    out = tmp_path / "preview.html"

    result = run(env, "preview", "ada@example.com", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert "<html" in out.read_text(encoding="utf-8")
    assert smtp_sink.messages == []


def test_preview_says_when_nothing_new_would_be_sent(env, smtp_sink: SmtpSink) -> None:
    run(env, "init")
    run(env, "subscribers", "add", "ada@example.com", "--interests", "video", "--confirmed")

    result = run(env, "preview", "ada@example.com")

    assert result.exit_code == 0, result.output
    assert "Nothing new for ada@example.com" in result.stdout
    assert smtp_sink.messages == []


def test_preview_of_an_unknown_subscriber_fails_cleanly(env) -> None:
    run(env, "init")

    result = run(env, "preview", "nobody@example.com")

    assert result.exit_code == 1
    assert "no such subscriber" in result.stderr


def test_rank_without_papers_ranks_the_stored_candidates(env) -> None:
    run(env, "init")
    run(env, "fetch", "--file", HF_DAILY, "--format", "hf-daily")

    result = run(env, "rank", "--interests", "video generation diffusion", "--top", "3")

    assert result.exit_code == 0, result.output
    [line] = [json.loads(x) for x in result.stdout.splitlines()]
    assert line["user"] == "cli" and len(line["ranked"]) == 3
    assert {"id", "score", "why"} <= set(line["ranked"][0])
