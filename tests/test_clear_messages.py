"""Messages an operator can act on: a full disk says so, a capped feed says it was cut at the
cap, and the web server's access log carries no working manage or unsubscribe link."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from digest.smtpd.sink import free_port
from digest.sources import parse
from digest.tokens import Tokens

DIGEST = str(Path(sys.executable).parent / "digest")


def _can_mount_in_a_namespace() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


def test_a_full_disk_at_start_up_says_disk_full(tmp_path: Path) -> None:
    """A real full file system: a 2 MB tmpfs, mounted in a private namespace, filled up."""
    if not _can_mount_in_a_namespace():
        reason = "needs unshare with user and mount namespaces"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI must run every leg
        pytest.skip(reason)
    source, mount = tmp_path / "src", tmp_path / "mnt"
    source.mkdir()
    mount.mkdir()
    env = {**os.environ, "DIGEST_MODE": "dev"}
    init = subprocess.run(
        [DIGEST, "init"],
        env={**env, "DIGEST_DATABASE_URL": f"sqlite:///{source / 'd.db'}"},
        capture_output=True,
    )
    assert init.returncode == 0, init.stderr
    script = (
        f"mount -t tmpfs -o size=2m tmpfs {mount} && cp {source / 'd.db'} {mount}/ && "
        f"(dd if=/dev/zero of={mount}/fill bs=4k 2>/dev/null; true) && "
        f"DIGEST_DATABASE_URL=sqlite:///{mount / 'd.db'} {DIGEST} editions list"
    )

    run = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, capture_output=True)

    error = " ".join(run.stderr.decode().split())
    assert run.returncode == 2
    assert "disk full" in error and "SQLite said: disk I/O error" in error, error
    assert "database unreachable" not in error


def test_a_feed_over_the_cap_says_it_was_cut_at_the_cap() -> None:
    items = ",".join(
        f'{{"paper": {{"id": "2606.{i:05d}", "title": "Paper {i}", "summary": "x"}}}}'
        for i in range(30)
    )

    result = parse("hf-daily", f"[{items}]".encode(), max_items=10)

    assert len(result.records) == 10
    assert result.warnings[0] == "feed has 30 items; cut at the cap of 10 (max_items_per_feed)"
    assert not any("without id or title" in w for w in result.warnings)


def test_the_access_log_carries_no_manage_or_unsubscribe_token(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DIGEST_MODE": "dev",
        "DIGEST_SECRET_KEY": "access-log-test-secret",
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
    }
    assert subprocess.run([DIGEST, "init"], env=env, capture_output=True).returncode == 0
    tokens = Tokens("access-log-test-secret")
    links = [f"/manage/{tokens.dumps('manage', 7)}", f"/u/{tokens.dumps('unsubscribe', 7)}"]
    server = subprocess.Popen(
        [DIGEST, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "no server"
                time.sleep(0.1)
        statuses = [httpx.get(f"http://127.0.0.1:{port}{link}").status_code for link in links]
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0].decode()

    assert all(status < 500 for status in statuses), statuses
    assert "GET /manage/" in log and "GET /u/" in log, log
    for link in links:
        token = link.rsplit("/", 1)[1]
        assert token not in log and token.split(".")[-1] not in log, log
