"""The edition use cases read the time from `services.clock`: a graph built with a fixed clock
plans, sends and previews at that instant, with no `now=` or `clock=` passed."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import select

from digest.bootstrap import Services
from digest.db import session_scope
from digest.models import Delivery
from digest.smtpd.sink import SmtpSink
from digest.store import subscribers as subscriber_store
from digest.usecases.editions import plan_edition, send_edition
from digest.usecases.ingest import ingest_file
from digest.usecases.previews import preview_digest

HF_DAILY = Path(__file__).parent / "fixtures" / "hf_daily_papers_api_limit30_2026-06-12.json"
NOW = datetime(2026, 6, 12, 8, 0, tzinfo=UTC)


def _fixed(services: Services) -> Services:
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=NOW)
    with session_scope(services.engine) as session:
        subscriber_store.add_subscriber(
            session, email="ada@example.com", interests="video generation", confirmed=True, now=NOW
        )
    return dataclasses.replace(services, clock=lambda: NOW)


def test_send_stamps_outcomes_with_the_services_clock(
    services: Services, smtp_sink: SmtpSink
) -> None:
    fixed = _fixed(services)
    edition, planned = plan_edition(fixed, now=NOW)
    # On the real clock this edition's window closed long ago: the run would only expire it.
    report = asyncio.run(send_edition(fixed, edition))
    assert planned == 1 and report.sent == 1 and not report.expired
    with session_scope(services.engine) as session:
        sent_at = session.exec(select(Delivery.sent_at)).one()
    assert sent_at is not None and sent_at.replace(tzinfo=UTC) == NOW
    assert len(smtp_sink.messages) == 1


def test_preview_reads_the_services_clock(services: Services) -> None:
    digest = preview_digest(_fixed(services), email="ada@example.com")
    assert digest.picks  # the fixture's papers are today's only on the fixed clock
