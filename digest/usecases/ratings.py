"""Rating papers: 👍/👎 from the email's links or the manage page, undo, and "more like this"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from digest.models import Subscriber
from digest.sources.ids import paper_key
from digest.store import archive as archive_store
from digest.store import papers as paper_store
from digest.store import subscribers as subscriber_store
from digest.texts import unicode_text

if TYPE_CHECKING:
    from digest.bootstrap import Services

# Seed papers kept at most when "more like this" adds one: the oldest make room.
MORE_LIKE_THIS_SEEDS = 50


@dataclass(frozen=True)
class Rating:
    paper_key: str
    title: str
    url: str | None
    value: int


@dataclass(frozen=True)
class RatedDigest:
    """A delivered digest a short rating link names: whose it was and what it showed."""

    subscriber_id: int
    edition_id: int
    paper_keys: list[str]


def rate(
    services: Services,
    subscriber_id: int,
    paper_key: str,
    value: int,
    *,
    edition_id: int | None = None,
) -> bool:
    """Record 👍 (+1), 👎 (-1) or undo (0); idempotent. False if the subscriber is gone."""
    with services.transaction() as tx:
        if subscriber_store.get(tx, subscriber_id) is None:
            return False
        subscriber_store.record_feedback(
            tx,
            subscriber_id=subscriber_id,
            paper_key=paper_key,
            value=value,
            edition_id=edition_id or None,
        )
        return True


def more_like_this(services: Services, subscriber_id: int, paper_key: str) -> bool:
    """Add the paper to the subscriber's seed papers, so similar ones rank higher."""
    with services.transaction() as tx:
        subscriber = subscriber_store.get(tx, subscriber_id)
        if subscriber is None:
            return False
        _add_seed(subscriber, paper_key)
        return True


def _add_seed(subscriber: Subscriber, paper_key: str) -> None:
    if paper_key not in subscriber.seed_papers:
        seeds = [*subscriber.seed_papers, paper_key]
        subscriber.seed_papers = seeds[-MORE_LIKE_THIS_SEEDS:]


def rate_more(
    services: Services, subscriber_id: int, paper_key: str, *, edition_id: int | None = None
) -> bool:
    """👍 and "more like this" at once, in one transaction. False if the subscriber is gone."""
    with services.transaction() as tx:
        subscriber = subscriber_store.get(tx, subscriber_id)
        if subscriber is None:
            return False
        subscriber_store.record_feedback(
            tx,
            subscriber_id=subscriber_id,
            paper_key=paper_key,
            value=1,
            edition_id=edition_id or None,
        )
        _add_seed(subscriber, paper_key)
        return True


def list_ratings(services: Services, subscriber_id: int) -> list[Rating]:
    """The subscriber's current 👍/👎, newest first, with titles where the paper is stored."""
    with services.reading() as tx:
        rows = subscriber_store.ratings_of(tx, subscriber_id)
        papers = paper_store.papers_by_keys(tx, [r.paper_key for r in rows]) if rows else {}
    return [
        Rating(
            r.paper_key,
            unicode_text(papers[r.paper_key].title) if r.paper_key in papers else r.paper_key,
            papers[r.paper_key].url if r.paper_key in papers else None,
            r.value,
        )
        for r in rows
    ]


def paper_title(services: Services, key: str) -> tuple[str, str | None]:
    """(title, link) of the paper a rating page names; the key itself when it is not stored."""
    with services.reading() as tx:
        paper = paper_store.get_paper(tx, paper_key(key))
    if paper is None:
        return key, None
    return unicode_text(paper.title), paper.url


def rated_digest(services: Services, delivery_id: int) -> RatedDigest | None:
    """The delivered digest behind a short rating link, or None when it shows nothing."""
    with services.reading() as tx:
        row = archive_store.delivery(tx, delivery_id)
        keys = archive_store.shown_keys(row) if row is not None else []
    if row is None or not keys:
        return None
    return RatedDigest(row.subscriber_id, row.edition_id, keys)
