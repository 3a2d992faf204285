"""The database itself: its schema revision, bringing it up to date, and its failures in words.

SQLite reports a full disk while opening its WAL files as a bare "disk I/O error", which reads
like a broken database; when the database's own file system has no room left, say so.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from digest import db
from digest.store.uow import Tx

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


def failure(exc: BaseException) -> str | None:
    """The first line of a database error (any driver's, through SQLAlchemy), else None."""
    return _first_line(exc) if isinstance(exc, SQLAlchemyError) else None


def revision(tx: Tx, database_url: str) -> str | None:
    """The revision stamped in the database, None when it was never migrated; a database that
    cannot be reached raises db.DatabaseError with `describe`'s line."""
    try:
        return db.current_revision(tx.get_bind())  # type: ignore[arg-type]
    except SQLAlchemyError as exc:
        raise db.DatabaseError(describe(exc, database_url)) from exc


def head() -> str | None:
    """The newest revision the migrations know."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(db.MIGRATIONS_DIR)).get_current_head()


def upgrade(tx: Tx) -> str:
    """Create or migrate the schema to the newest revision; returns that revision."""
    return db.upgrade(tx.get_bind())  # type: ignore[arg-type]


@contextmanager
def probe(database_url: str) -> Iterator[Tx]:
    """A session over an engine of its own, disposed of afterwards: for checking a database
    without building the services (whose start-up is what is being checked)."""
    engine = db.make_engine(database_url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()
