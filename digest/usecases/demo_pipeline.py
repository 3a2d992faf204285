"""The demo's run through the real pipeline: recorded feeds in, three subscribers, one edition
sent. Runs against whatever services it is given; digest/demo.py gives it a private database
and a local SMTP sink."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from digest.store import deliveries as ledger
from digest.store import subscribers as subscriber_store
from digest.usecases import editions, schema
from digest.usecases.ingest import ingest_file

if TYPE_CHECKING:
    from collections.abc import Sequence

    from digest.bootstrap import Services


@dataclass
class DemoRun:
    papers_new: int = 0
    papers_seen: int = 0
    subscribers: int = 0
    sent: int = 0
    already_sent: int = 0


def run(
    services: Services,
    feeds: Sequence[tuple[Path, str, str]],
    people: Sequence[tuple[str, str]],
    *,
    now: datetime,
) -> DemoRun:
    """Ingest `feeds` (path, format, source), add `people` (email, interests) as active, plan and
    send today's edition. A second run adds nobody and sends only what is new."""
    result = DemoRun()
    schema.upgrade(services)
    for path, kind, source in feeds:
        report = ingest_file(services, path, kind=kind, source=source, now=now)
        result.papers_new += report.new
        result.papers_seen += report.fetched
    with services.transaction() as tx:
        for email, interests in people:
            if subscriber_store.get_by_email(tx, email) is None:
                subscriber_store.add_subscriber(
                    tx, email=email, interests=interests, confirmed=True, now=now
                )
        result.subscribers = len(subscriber_store.active_subscribers(tx))
    edition, _ = editions.plan_edition(services, edition_date=now.date(), now=now)
    send = asyncio.run(editions.send_edition(services, edition, now=now))
    result.sent = send.sent
    with services.reading() as tx:
        counts = ledger.state_counts(tx, edition.id)
    result.already_sent = counts.get("sent", 0) - send.sent
    return result
