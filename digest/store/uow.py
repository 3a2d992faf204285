"""The unit of work: one transaction handed to a use case by `services`, never opened by it.

Use cases write `with services.transaction() as tx:` and pass `tx` to the store's functions;
only this package (with `models.py`, `db.py` and the migrations) imports SQLAlchemy, so the
type a use case sees is `Tx`, named here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlmodel import Session

from digest.db import session_scope

# What a use case holds while it works: the store's functions take it as their first argument.
Tx = Session

__all__ = ["Engine", "Tx", "reading", "transaction"]


@contextmanager
def transaction(engine: Engine) -> Iterator[Tx]:
    """Commit when the block ends normally, roll back when it raises."""
    with session_scope(engine) as session:
        yield session


@contextmanager
def reading(engine: Engine) -> Iterator[Tx]:
    """A session for reads (and for use cases that commit step by step themselves)."""
    with Session(engine, expire_on_commit=False) as session:
        yield session
