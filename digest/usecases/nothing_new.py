"""The short "nothing new today" note, for subscribers who asked for one instead of silence."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from digest.models import Subscriber
from digest.render import DigestLinks, RenderedDigest
from digest.usecases.digests import compose_message

if TYPE_CHECKING:
    from digest.bootstrap import Services

# The ledger's reason for a row that got no digest because its window held nothing new.
REASON = "nothing new"
# The reason kept on a row whose message was the note (sent, but not a digest).
NOTE_REASON = "nothing new: note sent"


def compose(
    services: Services,
    *,
    subscriber: Subscriber,
    links: DigestLinks,
    msg_id: str,
    edition_date: date,
    now: datetime,
) -> bytes:
    subject = f"Nothing new for you today, {edition_date:%d %b %Y}"
    values = {
        "subject": subject,
        "edition_label": edition_date.strftime("%A %d %B %Y"),
        "links": links,
        "postal_address": services.settings.email.postal_address,
    }
    env = services.templates
    note = RenderedDigest(
        subject=subject,
        html_utf8=env.get_template("email/nothing_new.html").render(values).encode("utf-8"),
        text_utf8=env.get_template("email/nothing_new.txt").render(values).encode("utf-8"),
    )
    return compose_message(
        services, subscriber=subscriber, digest=note, links=links, msg_id=msg_id, now=now
    )
