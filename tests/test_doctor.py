"""`digest doctor` against a working configuration (real SMTP sink) and a broken one."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session
from typer.testing import CliRunner

from digest.cli import app
from digest.db import make_engine
from digest.models import FeedState, utcnow
from digest.smtpd.sink import SmtpSink, free_port

GOOD_SECRET = "k" * 24 + "Zq8-3vX_0pLm2sNw"


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, list(args), env=env)


# A deployment's own values for every setting that ships with an example.com placeholder.
OWN_VALUES = {
    "DIGEST_BASE_URL": "https://digest.papers-lab.net",
    "DIGEST_FROM": "Trending Papers <digest@papers-lab.net>",
    "DIGEST_EMAIL_REPLY_TO_DOMAIN": "papers-lab.net",
    "DIGEST_EMAIL_LIST_ID": "Trending papers <digest.papers-lab.net>",
    "DIGEST_EMAIL_MESSAGE_ID_DOMAIN": "digest.papers-lab.net",
    "DIGEST_EMAIL_POSTAL_ADDRESS": "Papers Lab, 12 Rue des Ecoles, 75005 Paris",
    "DIGEST_INBOUND_ADDRESS": "digest@papers-lab.net",
    "DIGEST_INBOUND_BOUNCE_ADDRESS": "bounces@papers-lab.net",
    "DIGEST_FETCH_CONTACT": "admin@papers-lab.net",
}


def production_env(tmp_path: Path, smtp_port: int, secret: str) -> dict[str, str]:
    return {
        "DIGEST_MODE": "production",
        "DIGEST_SECRET_KEY": secret,
        **OWN_VALUES,
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'doctor.db'}",
        "DIGEST_SMTP_HOST": "127.0.0.1",
        "DIGEST_SMTP_PORT": str(smtp_port),
    }


def test_doctor_passes_on_a_working_configuration(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    env = production_env(tmp_path, smtp_sink.port, GOOD_SECRET)
    assert run(env, "init").exit_code == 0
    engine = make_engine(env["DIGEST_DATABASE_URL"])
    with Session(engine) as session:  # both configured sources fetched once: cached
        for name in ("arxiv-cs", "hf-daily"):
            now = utcnow()
            session.add(
                FeedState(source=name, last_status="ok", last_fetch_at=now, last_success_at=now)
            )
        session.commit()
    engine.dispose()

    result = run(env, "doctor")

    assert result.exit_code == 0, result.output
    for name in (
        "secret",
        "base URL",
        "From address",
        "placeholders",
        "database",
        "SMTP relay",
        "DKIM",
    ):
        assert f"ok   {name}:" in result.output
    assert "nothing sent" in result.output
    assert smtp_sink.messages == []
    assert GOOD_SECRET not in result.output


def test_doctor_names_each_failure_with_a_fix(tmp_path: Path) -> None:
    env = production_env(tmp_path, free_port(), "changeme")  # closed port, weak secret
    env["DIGEST_BASE_URL"] = "http://digest.papers-lab.net"
    env["DIGEST_FROM"] = "Trending Papers <not an address>"

    result = run(env, "doctor")

    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert {line.split(":")[0] for line in lines} >= {
        "FAIL secret",
        "FAIL base URL",
        "FAIL From address",
        "FAIL database",
        "FAIL SMTP relay",
        "FAIL sources",  # the fetch state lives in the missing database
    }
    assert all("fix:" in line for line in lines)
    assert "changeme" not in result.output


def test_doctor_fails_on_each_shipped_placeholder_in_production(tmp_path: Path) -> None:
    env = production_env(tmp_path, free_port(), GOOD_SECRET)
    for variable in OWN_VALUES:  # back to the shipped defaults
        del env[variable]
    env["DIGEST_FROM"] = "Trending Papers <digest@papers-lab.net>"  # only From was set
    env["DIGEST_BASE_URL"] = "http://localhost:8000"

    result = run(env, "doctor")

    assert result.exit_code == 1
    failed = {
        line.split(":")[0].removeprefix("FAIL ")
        for line in result.output.splitlines()
        if line.startswith("FAIL")
    }
    assert failed >= {
        "email.reply_to_domain",
        "email.list_id",
        "email.message_id_domain",
        "email.postal_address",
        "inbound.address",
        "inbound.bounce_address",
        "fetch.contact",
        "web.base_url",
    }
    assert "email.from_address" not in failed
    lines = [line for line in result.output.splitlines() if line.startswith("FAIL email.")]
    assert all("fix: set DIGEST_EMAIL_" in line for line in lines)
    assert any("1 Example Street" in line for line in lines)


def test_doctor_allows_the_placeholders_in_dev_mode(tmp_path: Path) -> None:
    env = {"DIGEST_MODE": "dev", "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}"}

    result = run(env, "doctor")

    assert "ok   placeholders: dev mode: allowed" in result.output
    assert "FAIL email." not in result.output and "FAIL web.base_url" not in result.output


def test_send_refuses_to_start_with_placeholders_in_production(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    env = production_env(tmp_path, smtp_sink.port, GOOD_SECRET)
    del env["DIGEST_EMAIL_POSTAL_ADDRESS"], env["DIGEST_EMAIL_REPLY_TO_DOMAIN"]
    assert run(env, "init").exit_code == 0
    added = run(env, "subscribers", "add", "ada@papers-lab.net", "--confirmed")
    assert added.exit_code == 0, added.output

    result = run(env, "send")

    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "DIGEST_EMAIL_REPLY_TO_DOMAIN" in result.stderr
    assert "DIGEST_EMAIL_POSTAL_ADDRESS" in result.stderr
    assert smtp_sink.messages == []
    worker = run(env, "worker", "--send-only")
    assert worker.exit_code == 1 and "DIGEST_EMAIL_POSTAL_ADDRESS" in worker.stderr
    ok = run({**env, **OWN_VALUES}, "send", "--json")
    assert ok.exit_code == 0, ok.output
