"""A subscriber's settings: reading their record, and tuning what and when they receive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from digest.models import Subscriber
from digest.store import subscribers as subscriber_store

if TYPE_CHECKING:
    from digest.bootstrap import Services


@dataclass(frozen=True)
class Preferences:
    """Everything the subscribe and manage forms edit, already validated."""

    interests: str = ""
    categories: tuple[str, ...] = ()
    seed_papers: tuple[str, ...] = ()
    timezone: str = "UTC"
    delivery_hour: int = 7
    frequency: str = "daily"
    weekly_day: int = 0
    trending_weight: float | None = None
    # A short "nothing new today" note on days with nothing new, instead of no mail.
    nothing_new_note: bool = False
    authors: tuple[str, ...] = ()  # followed authors: their papers come first
    muted: tuple[str, ...] = ()  # words or arXiv categories whose papers never appear
    papers_per_digest: int | None = None  # 5-30; None: the service's default


def apply_preferences(subscriber: Subscriber, prefs: Preferences) -> None:
    subscriber.interests = prefs.interests
    subscriber.categories = list(prefs.categories)
    subscriber.seed_papers = list(prefs.seed_papers)
    subscriber.timezone = prefs.timezone
    subscriber.delivery_hour = prefs.delivery_hour
    subscriber.frequency = prefs.frequency
    subscriber.weekly_day = prefs.weekly_day
    subscriber.trending_weight = prefs.trending_weight
    subscriber.nothing_new_note = prefs.nothing_new_note
    subscriber.authors = list(prefs.authors)
    subscriber.muted = list(prefs.muted)
    subscriber.papers_per_digest = prefs.papers_per_digest


def get_subscriber(services: Services, subscriber_id: int) -> Subscriber | None:
    with services.reading() as tx:
        return subscriber_store.get(tx, subscriber_id)


def update_preferences(services: Services, subscriber_id: int, prefs: Preferences) -> bool:
    with services.transaction() as tx:
        subscriber = subscriber_store.get(tx, subscriber_id)
        if subscriber is None:
            return False
        apply_preferences(subscriber, prefs)
        return True
