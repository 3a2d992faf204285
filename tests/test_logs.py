"""Log lines are key=value or JSON and never carry a secret or a working token."""

from __future__ import annotations

import io
import json
import logging
import sys

from digest.logs import configure_logging
from digest.settings import Settings, SmtpSettings
from digest.tokens import Tokens


def _capture(settings: Settings, message: str, *args: object) -> str:
    stream = io.StringIO()
    saved, sys.stderr = sys.stderr, stream
    try:
        configure_logging(settings)
        logging.getLogger("digest.test").warning(message, *args)
    finally:
        sys.stderr = saved
    return stream.getvalue()


def test_key_value_lines_mask_tokens_and_secrets() -> None:
    settings = Settings(
        mode="dev", secret_key="s3cret-signing-key", smtp=SmtpSettings(password="relay-password")
    )
    token = Tokens("s3cret-signing-key").dumps("unsubscribe", 12345)

    line = _capture(
        settings,
        "unsubscribe url=https://x/u/%s key=%s pw=%s",
        token,
        "s3cret-signing-key",
        "relay-password",
    )

    assert line.startswith("ts=") and "level=warning logger=digest.test" in line
    assert token not in line and token[:6] + "…" in line
    assert "s3cret-signing-key" not in line and "relay-password" not in line


def test_json_lines_parse() -> None:
    line = _capture(Settings(mode="dev", log_format="json"), "edition=%s sent=%d", "2026-11-24", 3)

    record = json.loads(line)
    assert record["message"] == "edition=2026-11-24 sent=3" and record["level"] == "warning"
