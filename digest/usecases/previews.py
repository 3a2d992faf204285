"""Use cases that render or send one digest outside the ledger: preview and test sends."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from digest import ranking
from digest.mailer import SendOutcome
from digest.models import Edition, Subscriber
from digest.render import RenderedDigest, message_id
from digest.store import subscribers as subscriber_store
from digest.usecases import digests

if TYPE_CHECKING:
    from digest.bootstrap import Services

TEST_EDITION_ID = 0


def _transient_edition(now: datetime) -> Edition:
    return Edition(id=TEST_EDITION_ID, edition_date=now.date(), status="preview")


def preview_digest(
    services: Services, *, email: str, now: datetime | None = None
) -> RenderedDigest:
    """Today's digest for a stored subscriber, rendered and returned, nothing sent or written."""
    now = now or services.clock()
    with services.reading() as tx:
        subscriber = subscriber_store.get_by_email(tx, email)
        if subscriber is None:
            raise LookupError(f"{email}: no such subscriber")
        context = digests.edition_context(services, tx, _transient_edition(now), now=now)
        [(digest, _, _)] = digests.digests_for(services, tx, context, [subscriber])
        return digest


async def send_test_digest(
    services: Services, *, to: str, interests: str = "", now: datetime | None = None
) -> SendOutcome:
    """Send one real digest to `to`, subject marked [TEST]; the delivery ledger is not touched."""
    now = now or services.clock()
    with services.reading() as tx:
        stored = subscriber_store.get_by_email(tx, to)
        subscriber = Subscriber(
            id=stored.id if stored else 0,
            email=to,
            interests=interests or (stored.interests if stored else ""),
            seed_papers=list(stored.seed_papers) if stored else [],
            categories=list(stored.categories) if stored else [],
        )
        context = digests.edition_context(services, tx, _transient_edition(now), now=now)
        [(digest, _, links)] = digests.digests_for(
            services, tx, context, [subscriber], is_test=True
        )
    msg_id = message_id(
        edition_id=TEST_EDITION_ID,
        subscriber_id=subscriber.id or 0,
        domain=services.settings.email.message_id_domain,
        secret=services.settings.secret(),
    )
    raw = digests.compose_message(
        services,
        subscriber=subscriber,
        digest=digest,
        links=links,
        msg_id=msg_id,
        now=now,
        is_test=True,
    )
    connection = services.smtp_connection()
    try:
        return await connection.send(
            sender=services.settings.email.from_address, recipient=to, message=raw
        )
    finally:
        await connection.close()


def rank_stored(
    services: Services, profiles: list, *, top: int, now: datetime | None = None
) -> list[list]:
    """Rank today's stored candidates for plain profiles: `digest rank` without --papers.

    Uses the same edition context (window-fitted text model, pool of rated papers) and the
    same ranker as the emails; the output is the plain top N by final score.
    """
    now = now or services.clock()
    with services.reading() as tx:
        context = digests.edition_context(services, tx, _transient_edition(now), now=now)
    if context.rank_context is None:
        return [[] for _ in profiles]
    result = ranking.rank_result(
        context.candidates,
        profiles,
        top_n=top,
        params=digests.rank_params(services),
        context=context.rank_context,
    )
    return [result.picks(i) for i in range(len(profiles))]
