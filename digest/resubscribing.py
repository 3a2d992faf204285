"""Taking back an unsubscribe from the link that made it.

The unsubscribe link is signed for one subscriber and arrived in their mailbox, so pressing
"Subscribe again" on its page proves the same thing a confirmation link does: no second mail
is needed. Only a self-service unsubscribe is undone this way; bounced, complained or erased
addresses must subscribe anew on the website (double opt-in).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlmodel import Session

from digest.bootstrap import Services
from digest.models import Consent, Subscriber, utcnow
from digest.store import web as web_store
from digest.subscriptions import consent_text_hash, keyed_hash

RESUBSCRIBE_FORM = "unsubscribe-page"


def resubscribe(services: Services, subscriber_id: int, *, now: datetime | None = None) -> bool:
    """Make an unsubscribed subscriber active again; False if that is not possible."""
    now = now or utcnow()
    with Session(services.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None or subscriber.status != "unsubscribed":
            return False
        if web_store.suppression_reason(session, subscriber.email) not in (None, "unsubscribed"):
            return False  # a bounce or complaint since: the address is not ours to mail
        session.add(
            Consent(
                subscriber_id=subscriber.id,
                nonce=secrets.token_urlsafe(24),
                form_version=RESUBSCRIBE_FORM,
                text_hash=consent_text_hash(services),
                ip_hash=keyed_hash(services, "ip", "link"),
                ua_hash=keyed_hash(services, "ua", "link"),
                requested_at=now,
                confirmed_at=now,
            )
        )
        subscriber.status = "active"
        subscriber.unsubscribed_at = None
        web_store.lift_suppression(session, subscriber.email, ("unsubscribed",))
        session.add(subscriber)
        session.commit()
        return True
