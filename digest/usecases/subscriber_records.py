"""The operator's handling of subscribers one at a time: add one (with their library and seed
papers), find, show everything stored about one, list them.

Adding follows the website's rules: without `confirmed` the person is pending and mailed the
confirmation link (operator_subscriptions.py); with it they are active at once. Their library
and seed papers are taken only once they are on the list, so a refused address adds nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from digest.store import personal_data, suppressions
from digest.store import subscribers as subscriber_store
from digest.store.subscribers import SubscriberError
from digest.usecases.following import follow
from digest.usecases.operator_subscriptions import NewSubscriber, add_pending, insert
from digest.usecases.profile_imports import import_library
from digest.usecases.seeds import fetch_missing_now
from digest.usecases.subscriptions import send_mail

if TYPE_CHECKING:
    from digest.bootstrap import Services
    from digest.mailer import SendOutcome
    from digest.models import Subscriber
    from digest.profile_files import LibraryImport
    from digest.usecases.seeds import SeedLookup

__all__ = ["Added", "NewSubscriber", "SubscriberError", "add", "find_id", "listing", "record"]


@dataclass
class Added:
    """What adding one subscriber did; `mail` is None when they were added as active."""

    email: str
    mail: SendOutcome | None = None
    library: LibraryImport | None = None
    followed: list[str] | None = None
    seeds: SeedLookup | None = None

    @property
    def mail_failed(self) -> bool:
        return self.mail is not None and self.mail.kind != "sent"


def add(
    services: Services,
    new: NewSubscriber,
    *,
    confirmed: bool,
    library: bytes | None = None,
    follow_frequent: bool = False,
) -> Added:
    """Add one subscriber; raises SubscriberError when the address is present or suppressed.

    When the confirmation mail cannot be sent the pending subscriber stays, and their library
    and seed papers wait for a retry by hand (`mail_failed`)."""
    added = Added(new.email)
    if confirmed:
        with services.transaction() as tx:
            insert(tx, new, confirmed=True)
    else:
        mail = add_pending(services, new)
        added.mail = asyncio.run(send_mail(services, mail))
        if added.mail_failed:
            return added
    seeds = list(new.seed_papers)
    if library is not None:
        subscriber_id = find_id(services, new.email)
        assert subscriber_id is not None
        added.library = import_library(services, subscriber_id, library).library
        if added.library.offered_authors and follow_frequent:
            added.followed = follow(services, subscriber_id, added.library.offered_authors)
        seeds += added.library.seeds
    if seeds:
        added.seeds = fetch_missing_now(services, seeds)
    return added


def find_id(services: Services, email: str) -> int | None:
    with services.reading() as tx:
        subscriber = subscriber_store.get_by_email(tx, email.strip())
        return subscriber.id if subscriber else None


def record(services: Services, email: str) -> dict[str, Any]:
    """Everything stored about one subscriber, with their suppression if any; a LookupError
    saying why when there is no such subscriber."""
    with services.reading() as tx:
        subscriber = subscriber_store.get_by_email(tx, email.strip())
        if subscriber is None:
            reason = suppressions.reason(tx, email)
            raise LookupError(
                f"no subscriber {email!r}" + (f" (suppressed: {reason})" if reason else "")
            )
        data = personal_data.export_subscriber(tx, subscriber)
        data["suppression"] = suppressions.reason(tx, subscriber.email)
    return data


def listing(services: Services, status: str | None = None) -> list[Subscriber]:
    with services.reading() as tx:
        return subscriber_store.list_subscribers(tx, status=status)
