"""The calendar of issue 15: no empty mails, a digest covers everything since the previous one,
a held edition when every source failed, and an edition's state following its deliveries.

Real parts: recorded feeds ingested from disk or served over loopback HTTP, the SMTP sink,
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from digest import bootstrap, timetable
from digest.bootstrap import Services
from digest.cli import app
from digest.db import make_engine, session_scope, upgrade
from digest.models import Delivery, Edition, Paper, Subscriber
from digest.settings import DeliverySettings, Settings, SmtpSettings, SourceSettings
from digest.smtpd.sink import SmtpSink
from digest.store import subscribers as subscriber_store
from digest.store.stats import list_editions
from digest.usecases.edition_states import status_of
from digest.usecases.editions import SendReport, plan_edition, send_edition
from digest.usecases.ingest import fetch_sources, ingest_file
from digest.usecases.reports import collect_stats
from tests.feed_server import Response, running_server

FIXTURES = Path(__file__).parent / "fixtures"
HF_DAILY = FIXTURES / "hf_daily_papers_api_limit30_2026-06-12.json"
QUANT_PH = FIXTURES / "arxiv_rss2_quant-ph_2025-04-28.xml"
# A Friday, after the edition of its day began (02:00 UTC).
FRIDAY = datetime(2026, 6, 12, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _services(database_url: str, sink: SmtpSink, **extra: object) -> Services:
    settings = Settings(
        mode="dev",
        database_url=database_url,
        smtp=SmtpSettings(host=sink.host, port=sink.port, timeout_s=10),
        delivery=DeliverySettings(backoff_base_s=0.01),
        **extra,  # type: ignore[arg-type]
    )
    services = bootstrap.build(settings, engine=make_engine(database_url))
    upgrade(services.engine)
    return services


def _subscribe(services: Services, address: str, interests: str, **fields: object) -> int:
    with session_scope(services.engine) as session:
        subscriber = subscriber_store.add_subscriber(
            session, email=address, interests=interests, confirmed=True, now=FRIDAY - 30 * DAY
        )
        for name, value in fields.items():
            setattr(subscriber, name, value)
        session.flush()
        return subscriber.id


def _send(services: Services, now: datetime) -> SendReport:
    hour = services.settings.scheduler.edition_hour
    edition, _ = plan_edition(services, now=now, edition_date=timetable.edition_date_at(now, hour))
    return asyncio.run(send_edition(services, edition, now=now, wait_for_retries=True))


def _keys_sent(services: Services, subscriber_id: int) -> list[list[str]]:
    with Session(services.engine) as session:
        rows = session.exec(
            select(Delivery)
            .where(Delivery.subscriber_id == subscriber_id, Delivery.state == "sent")
            .order_by(Delivery.id)
        ).all()
    return [list(r.paper_keys) for r in rows]


def _first_seen(services: Services) -> dict[str, datetime]:
    with Session(services.engine) as session:
        return {p.key: p.first_seen for p in session.exec(select(Paper))}


@pytest.fixture
def services(database_url: str, smtp_sink: SmtpSink):
    built = _services(database_url, smtp_sink)
    yield built
    built.close()


def test_a_day_with_nothing_new_sends_no_mail_and_the_ledger_says_why(
    services: Services, smtp_sink: SmtpSink
) -> None:
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=FRIDAY - DAY / 4)
    ada = _subscribe(services, "ada@example.com", "language model agents")

    first = _send(services, FRIDAY)
    second = _send(services, FRIDAY + DAY)  # Saturday: nothing new arrived

    assert (first.sent, second.sent) == (1, 0)
    assert second.nothing_new == 1
    assert [m.recipients for m in smtp_sink.messages] == [["ada@example.com"]]
    with Session(services.engine) as session:
        saturday = session.exec(
            select(Delivery).where(Delivery.subscriber_id == ada).order_by(Delivery.id)
        ).all()[-1]
        editions = session.exec(select(Edition).order_by(Edition.edition_date)).all()
    assert (saturday.state, saturday.reason) == ("skipped", "nothing new")
    assert [e.status for e in editions] == ["done", "done"]


def test_a_subscriber_may_ask_for_a_nothing_new_note(
    services: Services, smtp_sink: SmtpSink
) -> None:
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=FRIDAY - DAY / 4)
    _subscribe(services, "ada@example.com", "language model agents", nothing_new_note=True)

    _send(services, FRIDAY)
    report = _send(services, FRIDAY + DAY)

    assert report.notes == 1
    note = email.message_from_bytes(smtp_sink.messages[-1].data, policy=email.policy.default)
    assert note["Subject"].startswith("Nothing new for you today")
    assert "No new papers arrived since your last digest" in note.get_body(("plain",)).get_content()
    assert note["List-Unsubscribe"]


def test_after_a_holiday_the_digest_covers_everything_since_the_previous_one(
    services: Services, smtp_sink: SmtpSink
) -> None:
    ingest_file(services, QUANT_PH, kind="arxiv-rss", source="arxiv", now=FRIDAY - DAY / 4)
    ada = _subscribe(services, "ada@example.com", "quantum")
    _send(services, FRIDAY)
    # Papers arrive on Saturday; no edition runs until Wednesday, five days later: more than
    # the three days of candidates a digest used to look back.
    saturday = FRIDAY + DAY
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=saturday)
    wednesday = FRIDAY + 5 * DAY

    report = _send(services, wednesday)

    friday_keys, wednesday_keys = _keys_sent(services, ada)
    seen = _first_seen(services)
    assert report.sent == 1
    assert len(wednesday_keys) == services.settings.ranking.papers_per_digest
    assert all(seen[k] >= saturday for k in wednesday_keys)  # only what came since Friday's
    assert not set(friday_keys) & set(wednesday_keys)  # nothing repeats


def test_a_weekly_digest_picks_the_best_of_its_week(
    services: Services, smtp_sink: SmtpSink
) -> None:
    ingest_file(services, QUANT_PH, kind="arxiv-rss", source="arxiv", now=FRIDAY - 5 * DAY)
    weekly = _subscribe(services, "wes@example.com", "quantum", frequency="weekly")
    daily = _subscribe(services, "dan@example.com", "quantum")

    report = _send(services, FRIDAY)

    [weekly_keys] = _keys_sent(services, weekly)
    # More than a daily digest's 10, at most the weekly 20: matches, then only papers with
    # votes as trending fill (a paper nobody voted for is never padded in as "trending").
    assert services.settings.calendar.weekly_papers_per_digest == 20
    assert services.settings.ranking.papers_per_digest < len(weekly_keys) <= 20
    # The daily reader's first window (three days) holds none of these five-day-old papers.
    assert _keys_sent(services, daily) == []
    assert (report.sent, report.nothing_new) == (1, 1)


def test_when_every_source_failed_the_edition_is_held_and_nothing_is_lost(
    database_url: str, smtp_sink: SmtpSink
) -> None:
    body = QUANT_PH.read_bytes()
    with running_server() as server:
        source = SourceSettings(name="arxiv", kind="arxiv-rss", url=server.url("/rss"))
        services = _services(database_url, smtp_sink, sources=(source,))
        try:
            ada = _subscribe(services, "ada@example.com", "quantum")
            server.route("/rss", Response(body=body))
            asyncio.run(fetch_sources(services, now=FRIDAY - DAY / 4))
            _send(services, FRIDAY)
            # Saturday: the early fetch brings new papers, every later one fails.
            saturday = FRIDAY + DAY
            newer = body.replace(b"2504.", b"2505.")
            server.route("/rss", Response(body=newer))
            early = saturday.replace(hour=1)
            asyncio.run(fetch_sources(services, now=early))
            server.route("/rss", Response(status=503, body=b"down"))
            fetch_at = saturday.replace(hour=4)
            asyncio.run(fetch_sources(services, now=fetch_at))

            held = _send(services, saturday)

            assert held.sent == 0 and "every source failed" in held.held
            assert len(smtp_sink.messages) == 1
            with Session(services.engine) as session:
                [row] = list_editions(session, limit=1)
            assert row["status"] == "held"
            assert "every source failed (arxiv: HTTP 503" in row["note"]
            assert row["deliveries"] == {"held": 1}
            stats = collect_stats(services)
            assert stats["editions"][0]["status"] == "held"
            assert "every source failed" in stats["editions"][0]["note"]

            # Sunday the source is back: the digest carries Saturday's papers.
            sunday = FRIDAY + 2 * DAY
            server.route("/rss", Response(body=newer))
            asyncio.run(fetch_sources(services, now=sunday.replace(hour=1)))
            report = _send(services, sunday)

            assert report.sent == 1
            _, sunday_keys = _keys_sent(services, ada)
            assert sunday_keys and all(k.startswith("2505.") for k in sunday_keys)
        finally:
            services.close()


def test_editions_list_shows_the_state_its_deliveries_give(
    services: Services, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=FRIDAY - DAY / 4)
    _subscribe(services, "ada@example.com", "agents")
    hour = services.settings.scheduler.edition_hour
    edition, _ = plan_edition(services, now=FRIDAY, edition_date=FRIDAY.date())
    with Session(services.engine) as session:
        assert session.get(Edition, edition.id).status == "planned"

    asyncio.run(send_edition(services, edition, now=FRIDAY))

    with Session(services.engine) as session:
        assert session.get(Edition, edition.id).status == "done"
    assert timetable.edition_date_at(FRIDAY, hour) == FRIDAY.date()


@pytest.mark.parametrize(
    ("counts", "status"),
    [
        ({}, "planned"),
        ({"pending": 3}, "planned"),
        ({"pending": 2, "sent": 1}, "sending"),
        ({"claimed": 2}, "sending"),
        ({"sent": 2, "skipped": 1}, "done"),
        ({"sent": 2, "failed": 1}, "partly failed"),
        ({"sent": 2, "expired": 1}, "partly failed"),
        ({"expired": 3}, "expired"),
        ({"held": 3}, "held"),
    ],
)
def test_an_editions_state_follows_its_deliveries(counts: dict[str, int], status: str) -> None:
    assert status_of(counts) == status


def test_send_says_in_one_line_that_the_edition_is_held(tmp_path: Path, smtp_sink: SmtpSink):
    database_url = f"sqlite:///{tmp_path / 'cli.db'}"
    with running_server() as server:
        server.route("/rss", Response(status=503, body=b"down"))
        config = tmp_path / "sources.toml"
        config.write_text(
            f'[[sources]]\nname = "arxiv"\nkind = "arxiv-rss"\nurl = "{server.url("/rss")}"\n'
        )
        env = {
            "DIGEST_CONFIG": str(config),
            "DIGEST_DATABASE_URL": database_url,
            "DIGEST_MODE": "dev",
            "DIGEST_SMTP_HOST": smtp_sink.host,
            "DIGEST_SMTP_PORT": str(smtp_sink.port),
            "DIGEST_FETCH__RETRIES": "0",
            "DIGEST_FETCH__MIN_INTERVAL_PER_HOST_S": "0",
        }
        runner = CliRunner()
        assert runner.invoke(app, ["init"], env=env).exit_code == 0
        fetched = runner.invoke(app, ["fetch"], env=env)
        runner.invoke(
            app,
            ["subscribers", "add", "ada@example.com", "--interests", "x", "--confirmed"],
            env=env,
        )
        result = runner.invoke(app, ["send", "--all-now"], env=env)

    assert fetched.exit_code != 0 or "failed" in fetched.output.lower()
    assert result.exit_code == 0, result.output
    assert smtp_sink.messages == []
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("Sent nothing: the ") and "every source failed" in line
    with Session(make_engine(database_url)) as session:
        assert session.exec(select(Subscriber)).one().email == "ada@example.com"


def test_an_edition_reads_only_the_papers_its_waiting_windows_hold(
    services: Services, smtp_sink: SmtpSink
) -> None:
    from digest.usecases.digests import edition_context

    ingest_file(services, QUANT_PH, kind="arxiv-rss", source="arxiv", now=FRIDAY - DAY / 4)
    _subscribe(services, "ada@example.com", "quantum")
    _send(services, FRIDAY)
    saturday = FRIDAY + DAY
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=saturday - DAY / 4)
    hour = services.settings.scheduler.edition_hour
    edition, _ = plan_edition(
        services, now=saturday, edition_date=timetable.edition_date_at(saturday, hour)
    )

    with Session(services.engine) as session:
        context = edition_context(services, session, edition, now=saturday)
    seen = _first_seen(services)

    # Friday's 81 papers were Ada's to get on Friday: the edition does not even read them.
    assert context.candidates
    assert all(seen[c.id] >= FRIDAY for c in context.candidates)
    assert len(context.candidates) < len(seen)
