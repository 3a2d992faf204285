"""A subscriber's digest opened in the browser ("view in browser" in every email).

A digest that went out is replayed exactly as sent (its stored picks, in order, with the same
short rating links), not re-ranked with today's papers; an edition with no message to this
subscriber, or no edition at all (today's, unsaved), is ranked as it would be now.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import TYPE_CHECKING

from digest.models import Edition, Subscriber, utcnow
from digest.store import archive as archive_store
from digest.store import subscribers as subscriber_store
from digest.store.uow import Tx
from digest.usecases import editions
from digest.usecases.digests import replay_digest

if TYPE_CHECKING:
    from digest.bootstrap import Services


def digest_html(services: Services, subscriber_id: int, edition_id: int) -> str | None:
    """The digest's HTML as mailed (or as it would be), or None when the subscriber is gone.

    `edition_id` 0 (or an edition since deleted) means today's digest, unsaved.
    """
    with services.reading() as tx:
        subscriber = subscriber_store.get(tx, subscriber_id)
        if subscriber is None:
            return None
        edition = archive_store.edition(tx, edition_id) if edition_id else None
        return _digest(services, tx, subscriber, edition)


def _digest(services: Services, tx: Tx, subscriber: Subscriber, edition: Edition | None) -> str:
    if edition is None:
        now = utcnow()
        edition = Edition(id=0, edition_date=now.date(), status="preview")
    else:
        now = datetime.combine(edition.edition_date, time(23, 59), tzinfo=UTC)
        now = min(now, utcnow())
    row = (
        archive_store.sent_row(tx, edition_id=edition.id, subscriber_id=subscriber.id)
        if edition.id
        else None
    )
    shown = list(row.picks or []) if row is not None else []
    if shown:
        digest = replay_digest(services, tx, edition, subscriber, shown, delivery_id=row.id)
    else:
        context = editions.edition_context(services, tx, edition, now=now)
        [(digest, _, _)] = editions.digests_for(services, tx, context, [subscriber])
    return digest.html
