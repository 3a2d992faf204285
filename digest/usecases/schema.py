"""The database's schema as the operator handles it: is it there, bring it up to date, and a
database failure in one line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from digest.store import schema

if TYPE_CHECKING:
    from digest.bootstrap import Services


def current_revision(services: Services) -> str | None:
    """The schema revision, None when never migrated; raises db.DatabaseError (one line) when
    the database cannot be reached."""
    with services.reading() as tx:
        return schema.revision(tx, services.settings.database_url)


def upgrade(services: Services) -> str:
    """Create or migrate the schema to the newest revision; returns that revision."""
    with services.reading() as tx:
        return schema.upgrade(tx)


def database_failure(exc: BaseException) -> str | None:
    """The first line of `exc` when the database raised it, else None (not ours to describe)."""
    return schema.failure(exc)
