"""The Procfile's processes exist, and the web app never runs the scheduler (RELIABILITY §3)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from digest.cli import app
from digest.web import create_app

ROOT = Path(__file__).resolve().parents[1]


def test_every_procfile_process_names_a_real_command() -> None:
    lines = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )

    assert set(lines) == {"web", "worker", "release"}
    for command in lines.values():
        words = command.split()
        assert words[0] == "digest"
        args = [w for w in words[1:] if not w.startswith(("-", "$")) and not w[0].isdigit()]
        args = [a for a in args if a not in ("0.0.0.0",)]
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_the_web_app_starts_no_scheduler(services) -> None:
    before = {t.name for t in threading.enumerate()}

    with TestClient(create_app(services)) as client:
        assert client.get("/healthz").status_code in (200, 503)
        during = {t.name for t in threading.enumerate()} - before

    assert not any("APScheduler" in name or "scheduler" in name.lower() for name in during)
    modules = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, digest.web; "
            "print(any(m.startswith(('apscheduler', 'digest.usecases.scheduler'))"
            " for m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert modules == "False"
