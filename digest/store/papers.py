"""Paper rows: read them back by key or age, and write merged rows in one statement per batch.

Keys are exact: reading what a person typed (an arXiv id with a version, a link) is the
caller's business (digest.sources.ids.paper_key). How records from several sources merge into
one row is digest.usecases.paper_merge's; this module only reads and writes the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from digest.models import Paper

ANNOUNCED = ("new", "cross")
REPLACEMENTS = ("replace", "replace-cross")
# Rows created by seed-paper lookups are reference data, never announced as today's papers.
LOOKUP = "lookup"
# Keys per IN (...) lookup; SQLite allows 32,766 bound parameters per statement.
BATCH_ROWS = 500
_TABLE = Paper.__table__  # type: ignore[attr-defined]
# Every column a merge may set: all but the surrogate id and the key it merges on.
MUTABLE_COLUMNS = tuple(c.name for c in _TABLE.columns if c.name not in ("id", "key"))


def insert_statement(session: Session, table: Any) -> Any:
    """INSERT for `table` in the session's dialect, ready for an ON CONFLICT clause."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    # The service supports SQLite and PostgreSQL only.
    raise RuntimeError(f"unsupported database dialect {dialect!r}")


def write_papers(session: Session, rows: list[dict[str, Any]], *, loaded: Iterable[Paper]) -> None:
    """Insert or replace whole rows by key; `loaded` are the ORM objects read before the merge,
    expired here so later reads see the new values."""
    statement = insert_statement(session, _TABLE)
    # first_seen is never overwritten: a paper's age is when we first saw it.
    updates = {name: statement.excluded[name] for name in MUTABLE_COLUMNS if name != "first_seen"}
    statement = statement.on_conflict_do_update(index_elements=["key"], set_=updates)
    # executemany: one cached compiled statement, batched by SQLAlchemy's insertmanyvalues;
    # a literal multi-row VALUES would be recompiled per batch (3 s per 2,000 rows).
    # Every row carries every column, so the executemany parameter sets are uniform.
    session.connection().execute(statement, rows)
    for paper in loaded:
        session.expire(paper)


def recent_papers(session: Session, *, since: datetime) -> list[Paper]:
    """Papers first seen at or after `since` that were announced as new or cross-listed."""
    statement = (
        select(Paper)
        .where(Paper.first_seen >= since, Paper.announce.in_(ANNOUNCED))  # type: ignore[attr-defined]
        .order_by(Paper.first_seen, Paper.key)
    )
    return list(session.exec(statement).all())


def papers_by_keys(session: Session, keys: Sequence[str]) -> dict[str, Paper]:
    """Stored papers by exact key; missing keys are absent."""
    found: dict[str, Paper] = {}
    names = list(dict.fromkeys(keys))
    for start in range(0, len(names), BATCH_ROWS):
        chunk = names[start : start + BATCH_ROWS]
        query = select(Paper).where(Paper.key.in_(chunk))  # type: ignore[attr-defined]
        for paper in session.exec(query).all():
            found[paper.key] = paper
    return found


def list_papers(session: Session, *, since: datetime | None = None) -> list[Paper]:
    """Every stored paper (first seen at or after `since` when given), newest first."""
    statement = select(Paper)
    if since is not None:
        statement = statement.where(Paper.first_seen >= since)
    statement = statement.order_by(Paper.first_seen.desc(), Paper.key)  # type: ignore[attr-defined]
    return list(session.exec(statement).all())


def get_paper(session: Session, key: str) -> Paper | None:
    """One paper by exact key, or None."""
    return session.exec(select(Paper).where(Paper.key == key)).first()
