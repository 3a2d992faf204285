"""Log lines as key=value text or JSON (setting `log_format`), with secrets and tokens masked.

Every record passes a filter that replaces signed tokens (the itsdangerous form used in every
link) and the configured secrets with a short prefix and `…`, so a log never carries a working
link or a password, whatever a caller put in its message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from digest.settings import Settings

# payload.timestamp.signature, as minted by digest.tokens
TOKEN = re.compile(r"\b([A-Za-z0-9_-]{6})[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}\b")


class RedactingFilter(logging.Filter):
    """Masks tokens and the given secret values in the formatted message."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def redact(self, text: str) -> str:
        text = TOKEN.sub(lambda m: f"{m.group(1)}…", text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        return True


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (test runners swap it per command)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = f"ts={when} level={record.levelname.lower()} logger={record.name} {record.msg}"
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.msg,
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure_logging(settings: Settings, *, level: int = logging.INFO) -> logging.Handler:
    """Install one stderr handler on the `digest` logger for this process."""
    secrets = [settings.secret_key.get_secret_value() if settings.secret_key else ""]
    secrets += [key.get_secret_value() for key in settings.old_secret_keys]
    if settings.smtp.password is not None:
        secrets.append(settings.smtp.password.get_secret_value())
    handler = _CurrentStderr(sys.stderr)
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else KeyValueFormatter())
    logger = logging.getLogger("digest")
    for old in list(logger.handlers):
        if getattr(old, "_digest_handler", False):
            logger.removeHandler(old)
    handler._digest_handler = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
