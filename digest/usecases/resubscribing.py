"""Taking back an unsubscribe from the link that made it.

The unsubscribe link is signed for one subscriber and arrived in their mailbox, so pressing
"Subscribe again" on its page proves the same thing a confirmation link does: no second mail
is needed. Only a self-service unsubscribe is undone this way; bounced, complained or erased
addresses must subscribe anew on the website (double opt-in).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from digest.models import utcnow
from digest.store import subscribers as subscriber_store
from digest.store import suppressions
from digest.usecases.consents import activate_with_consent

if TYPE_CHECKING:
    from digest.bootstrap import Services

RESUBSCRIBE_FORM = "unsubscribe-page"


def resubscribe(services: Services, subscriber_id: int, *, now: datetime | None = None) -> bool:
    """Make an unsubscribed subscriber active again; False if that is not possible."""
    now = now or utcnow()
    with services.transaction() as tx:
        subscriber = subscriber_store.get(tx, subscriber_id)
        if subscriber is None or subscriber.status != "unsubscribed":
            return False
        if suppressions.reason(tx, subscriber.email) not in (None, "unsubscribed"):
            return False  # a bounce or complaint since: the address is not ours to mail
        activate_with_consent(
            tx,
            services,
            subscriber,
            form_version=RESUBSCRIBE_FORM,
            origin="link",
            lift=("unsubscribed",),
            now=now,
        )
        return True
