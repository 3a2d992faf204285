"""What a database failure at start-up means, in one line an operator can act on.

SQLite reports a full disk while opening its WAL files as a bare "disk I/O error", which reads
like a broken database; when the database's own file system has no room left, say so.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

NEARLY_FULL_BYTES = 1 << 20


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _free_bytes(database_url: str) -> int | None:
    """Room left where the SQLite file lives, or None for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    folder = Path(url.database).parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def describe(exc: BaseException, database_url: str) -> str:
    """One line: "disk full: ..." when that is what happened, else "database unreachable: ..."."""
    cause = getattr(exc, "orig", None) or exc
    said = _first_line(cause)
    if isinstance(cause, sqlite3.Error):
        name = getattr(cause, "sqlite_errorname", "")
        free = _free_bytes(database_url)
        if name == "SQLITE_FULL" or (
            name.startswith("SQLITE_IOERR") and free is not None and free < NEARLY_FULL_BYTES
        ):
            return f"disk full: no space left for the SQLite database (SQLite said: {said})"
    elif getattr(cause, "sqlstate", None) == "53100" or "No space left on device" in said:
        return f"disk full: the PostgreSQL server has no space left (it said: {said})"
    return f"database unreachable: {said}"
