"""`digest doctor` against a working configuration (real SMTP sink) and a broken one."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session
from typer.testing import CliRunner

from digest.cli import app
from digest.db import make_engine
from digest.models import FeedState, utcnow
from digest.sink import SmtpSink, free_port

GOOD_SECRET = "k" * 24 + "Zq8-3vX_0pLm2sNw"


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, list(args), env=env)


def production_env(tmp_path: Path, smtp_port: int, secret: str) -> dict[str, str]:
    return {
        "DIGEST_MODE": "production",
        "DIGEST_SECRET_KEY": secret,
        "DIGEST_BASE_URL": "https://digest.example.com",
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
    for name in ("secret", "base URL", "From address", "database", "SMTP relay", "DKIM"):
        assert f"ok   {name}:" in result.output
    assert "nothing sent" in result.output
    assert smtp_sink.messages == []
    assert GOOD_SECRET not in result.output


def test_doctor_names_each_failure_with_a_fix(tmp_path: Path) -> None:
    env = production_env(tmp_path, free_port(), "changeme")  # closed port, weak secret
    env["DIGEST_BASE_URL"] = "http://digest.example.com"
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
