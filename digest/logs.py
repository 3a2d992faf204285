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
# A token in a link path, however short its payload (a subscriber id's is 2-3 characters, too
# short for TOKEN to tell it from other dotted words): only the payload's first 2 are kept.
TOKEN_PATH = re.compile(
    r"(/(?:manage|u|confirm|view|f|feed)/)([A-Za-z0-9_-]{1,2})[A-Za-z0-9_-]*"
    r"\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"
)


class RedactingFilter(logging.Filter):
    """Masks tokens and the given secret values in the formatted message."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def redact(self, text: str) -> str:
        text = TOKEN.sub(lambda m: f"{m.group(1)}…", text)
        text = TOKEN_PATH.sub(lambda m: f"{m.group(1)}{m.group(2)}…", text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        return True


class ServerLogFilter(RedactingFilter):
    """The same masking for the web server's own loggers (uvicorn's access log), whose
    formatters read the record's arguments: those are masked one by one, not dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        return True


def redact_server_logs(settings: Settings) -> None:
    """Mask tokens in the web server's access and error logs (call after it set them up)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, ServerLogFilter) for f in logger.filters):
            logger.addFilter(ServerLogFilter(_secrets(settings)))


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


def _secrets(settings: Settings) -> list[str]:
    secrets = [settings.secret_key.get_secret_value() if settings.secret_key else ""]
    secrets += [key.get_secret_value() for key in settings.old_secret_keys]
    if settings.smtp.password is not None:
        secrets.append(settings.smtp.password.get_secret_value())
    return secrets


def configure_logging(settings: Settings, *, level: int = logging.INFO) -> logging.Handler:
    """Install one stderr handler on the `digest` logger for this process."""
    handler = _CurrentStderr(sys.stderr)
    handler.addFilter(RedactingFilter(_secrets(settings)))
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else KeyValueFormatter())
    logger = logging.getLogger("digest")
    for old in list(logger.handlers):
        if getattr(old, "_digest_handler", False):
            logger.removeHandler(old)
    handler._digest_handler = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
