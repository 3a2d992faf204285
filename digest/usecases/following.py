"""Followed authors added one by one (the email command `follow: NAME`, profile imports).

A name already followed in another form ("Hajdu\\v{s}ek" for "Hajdušek") is not added twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from digest.ranking.authors import author_key
from digest.store import subscribers as subscriber_store

if TYPE_CHECKING:
    from digest.bootstrap import Services

MAX_AUTHORS = 50
MAX_AUTHOR_CHARS = 100


def clean_names(names: Sequence[str]) -> list[str]:
    """Names with spaces collapsed, empty and over-long ones dropped, each person once."""
    out: dict[str, str] = {}
    for name in names:
        name = " ".join(name.split())
        if name and len(name) <= MAX_AUTHOR_CHARS:
            out.setdefault(author_key(name), name)
    return list(out.values())


def follow(services: Services, subscriber_id: int, names: Sequence[str]) -> list[str]:
    """Add these authors to the subscriber's followed ones; returns the names newly followed
    (at most MAX_AUTHORS are kept in all)."""
    with services.transaction() as tx:
        subscriber = subscriber_store.get(tx, subscriber_id)
        if subscriber is None:
            return []
        known = {author_key(a) for a in subscriber.authors}
        room = max(0, MAX_AUTHORS - len(subscriber.authors))
        added = [n for n in clean_names(names) if author_key(n) not in known][:room]
        if added:
            subscriber.authors = [*subscriber.authors, *added]
        return added
