"""Fetching against a real HTTP server on 127.0.0.1: politeness, limits, failures, SSRF, CLI.

Waits (Retry-After, backoff, per-host spacing) go through an injected clock and sleep, so the
tests check the seconds asked for without spending them; deadlines are real and short.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner

from digest import bootstrap
from digest.bootstrap import Services
from digest.db import make_engine, session_scope, upgrade
from digest.models import FeedState
from digest.settings import FetchSettings, Settings, SourceSettings
from digest.sources.fetch import Fetcher, Fetchers, retry_after_seconds
from digest.store.papers import list_papers, recent_papers
from digest.usecases import ingest, ingest_fetch
from digest.usecases.ingest import fetch_sources, lookup_arxiv_ids
from tests.feed_server import FeedServer, Response, running_server

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 6, 12, 6, 0, tzinfo=UTC)


def fixture(name: str) -> bytes:
    data = (FIXTURES / name).read_bytes()
    return json.loads(data)["body"].encode("latin-1") if name.startswith("arxivpy_") else data


RSS = fixture("arxiv_rss2_quant-ph_2025-04-28.xml")
HF = fixture("hf_daily_papers_api_limit30_2026-06-12.json")
THIRD_PARTY = fixture("hf_papers_rss_thirdparty_MichaelMarkert_2026-08-22.xml")
API_PAGE = fixture("arxivpy_q_testing_s0_m100_cfe7536492ca.json")
API_ERROR = fixture("arxivpy_id_abc_s0_m100_b79c8dcf6bc3.json")
API_EMPTY = fixture("arxivpy_id_0000.0000_s0_m100_8b51d9633a68.json")


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with running_server() as server:
        yield server


@pytest.fixture
def other_server() -> Iterator[FeedServer]:
    """A second server, e.g. the target of a redirect that must never be followed."""
    with running_server() as server:
        yield server


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'fetch.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_settings(sources: list[tuple[str, str, str]], **fetch: object) -> Settings:
    options: dict[str, object] = {"min_interval_per_host_s": 0.0, "retries": 2, "deadline_s": 5.0}
    options.update(fetch)
    return Settings(
        mode="dev",
        fetch=FetchSettings(**options),  # type: ignore[arg-type]
        sources=tuple(SourceSettings(name=n, kind=k, url=u) for n, k, u in sources),  # type: ignore[arg-type]
    )


def services_for(settings: Settings, engine: Engine, fake: FakeTime) -> Services:
    """The service's graph as build() wires it, with a fetcher on the fake clock."""
    fetchers = Fetchers(settings.fetch, sleep=fake.sleep, clock=fake.clock)
    return bootstrap.build(settings, engine=engine, fetchers=fetchers)


def run(
    settings: Settings, engine: Engine, fake: FakeTime, **kw: object
) -> list[ingest.SourceReport]:
    services = services_for(settings, engine, fake)
    return asyncio.run(fetch_sources(services, now=NOW, **kw))  # type: ignore[arg-type]


def state_of(engine: Engine, source: str) -> FeedState:
    with session_scope(engine) as session:
        state = session.exec(select(FeedState).where(FeedState.source == source)).one()
        session.expunge(state)
        return state


# --- every source kind over HTTP --------------------------------------------------------------


def test_all_kinds_fetched_parsed_and_stored(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    feed_server.route("/rss/quant-ph", Response(body=RSS, etag='"v1"'))
    feed_server.route("/api/daily_papers", Response(body=HF))
    feed_server.route("/hf.xml", Response(body=THIRD_PARTY))
    feed_server.route("/api/query", Response(body=API_EMPTY))
    settings = make_settings(
        [
            ("arxiv", "arxiv-rss", feed_server.url("/rss/quant-ph")),
            ("hf", "hf-daily", feed_server.url("/api/daily_papers")),
            ("third", "feed", feed_server.url("/hf.xml")),
            ("api", "arxiv-api", feed_server.url("/api/query?search_query=cat:quant-ph")),
        ]
    )
    reports = run(settings, engine, fake_time)
    summary = {r.source: (r.status, r.fetched, r.new, r.changed) for r in reports}
    assert summary == {
        "arxiv": ("ok", 81, 81, 0),  # the 31 replacements are new rows too (never announced)
        "hf": ("ok", 30, 30, 0),
        "third": ("ok", 26, 26, 0),
        "api": ("empty", 0, 0, 0),
    }
    request = feed_server.hits("/rss/quant-ph")[0]
    assert (
        request.headers["user-agent"].startswith("digest/")
        and "mailto:" in request.headers["user-agent"]
    )
    assert state_of(engine, "arxiv").etag == '"v1"'
    assert state_of(engine, "api").last_error == "0 items"


def test_not_modified_costs_no_parse(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_server.route(
        "/rss",
        Response(
            body=RSS, etag='"abc"', headers={"Last-Modified": "Mon, 28 Apr 2025 04:00:00 GMT"}
        ),
    )
    settings = make_settings([("arxiv", "arxiv-rss", feed_server.url("/rss"))])
    assert run(settings, engine, fake_time)[0].new == 81
    parses: list[str] = []
    real_parse = ingest_fetch.parse
    monkeypatch.setattr(
        ingest_fetch,
        "parse",
        lambda kind, *a, **k: parses.append(kind) or real_parse(kind, *a, **k),
    )
    report = run(settings, engine, fake_time)[0]
    assert (report.status, report.http_status, report.fetched) == ("not-modified", 304, 0)
    assert parses == []
    second = feed_server.hits("/rss")[1]
    assert second.headers["if-none-match"] == '"abc"'
    assert second.headers["if-modified-since"] == "Mon, 28 Apr 2025 04:00:00 GMT"
    state = state_of(engine, "arxiv")
    assert state.last_status == "not-modified" and state.etag == '"abc"'


# --- slow, big, failing servers ---------------------------------------------------------------


def test_trickling_server_hits_the_total_deadline(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    # One byte every 50 ms never trips the 30 s read timeout; only the total deadline stops it.
    feed_server.route("/slow", Response(body=RSS, trickle_s=0.05))
    feed_server.route("/fast", Response(body=THIRD_PARTY))
    settings = make_settings(
        [
            ("slow", "arxiv-rss", feed_server.url("/slow")),
            ("fast", "feed", feed_server.url("/fast")),
        ],
        deadline_s=0.5,
    )
    started = time.perf_counter()
    slow, fast = run(settings, engine, fake_time)
    assert time.perf_counter() - started < 5
    assert slow.status == "failed" and "deadline of 0.5s exceeded" in (slow.error or "")
    assert fast.status == "ok" and fast.new == 26
    assert state_of(engine, "slow").last_status == "failed"


def test_429_waits_for_retry_after_then_succeeds(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    feed_server.route(
        "/busy",
        Response(429, b"slow down", headers={"Retry-After": "7"}),
        Response(503, b"again", headers={"Retry-After": "11"}),
        Response(body=THIRD_PARTY),
    )
    settings = make_settings([("busy", "feed", feed_server.url("/busy"))], retries=3)
    report = run(settings, engine, fake_time)[0]
    assert report.status == "ok" and report.new == 26 and report.requests == 3
    assert fake_time.sleeps == [7.0, 11.0]


def test_500_retried_with_backoff_then_recorded(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    feed_server.route("/broken", Response(500, b"oops"))
    feed_server.route("/fine", Response(body=THIRD_PARTY))
    settings = make_settings(
        [
            ("broken", "feed", feed_server.url("/broken")),
            ("fine", "feed", feed_server.url("/fine")),
        ],
        retries=2,
        backoff_base_s=2.0,
    )
    broken, fine = run(settings, engine, fake_time)
    assert broken.status == "failed" and broken.error == "HTTP 500 after 3 attempts"
    assert len(feed_server.hits("/broken")) == 3
    # Exponential backoff with jitter: 2 s then 4 s, each plus up to one base of jitter.
    assert len(fake_time.sleeps) == 2
    assert 2.0 <= fake_time.sleeps[0] <= 4.0 and 4.0 <= fake_time.sleeps[1] <= 6.0
    assert fine.status == "ok"
    state = state_of(engine, "broken")
    assert state.last_status == "failed" and state.last_error == "HTTP 500 after 3 attempts"


def test_retry_after_too_long_fails_fast(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    feed_server.route("/later", Response(429, headers={"Retry-After": "3600"}))
    settings = make_settings([("later", "feed", feed_server.url("/later"))])
    report = run(settings, engine, fake_time)[0]
    assert report.status == "failed" and "asked to wait 3600s" in (report.error or "")
    assert fake_time.sleeps == []


def test_404_is_a_one_line_failure(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    settings = make_settings([("gone", "feed", feed_server.url("/gone"))])
    report = run(settings, engine, fake_time)[0]
    assert report.status == "failed" and report.error.startswith("HTTP 404 Not Found")  # type: ignore[union-attr]
    assert len(feed_server.hits("/gone")) == 1  # 4xx is not retried


def test_redirects_followed_loops_and_chains_stopped(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    feed_server.route("/moved", Response(301, headers={"Location": "/feed.xml"}))
    feed_server.route("/feed.xml", Response(body=THIRD_PARTY))
    feed_server.route("/a", Response(302, headers={"Location": "/b"}))
    feed_server.route("/b", Response(302, headers={"Location": feed_server.url("/a")}))
    for i in range(8):
        feed_server.route(f"/c{i}", Response(307, headers={"Location": f"/c{i + 1}"}))
    settings = make_settings(
        [
            ("moved", "feed", feed_server.url("/moved")),
            ("loop", "feed", feed_server.url("/a")),
            ("chain", "feed", feed_server.url("/c0")),
        ]
    )
    moved, loop, chain = run(settings, engine, fake_time)
    assert moved.status == "ok" and moved.new == 26
    assert loop.status == "failed" and "redirect loop" in (loop.error or "")
    assert len(feed_server.hits("/a")) == 1 and len(feed_server.hits("/b")) == 1
    assert chain.status == "failed" and "more than 5 redirects" in (chain.error or "")
    assert len([r for r in feed_server.requests if r.path.startswith("/c")]) == 6


def test_oversized_body_cut_at_the_cap(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    big = RSS * 3
    feed_server.route("/declared", Response(body=big))
    feed_server.route("/streamed", Response(body=big, content_length=False))
    settings = make_settings(
        [
            ("declared", "arxiv-rss", feed_server.url("/declared")),
            ("streamed", "arxiv-rss", feed_server.url("/streamed")),
        ],
        max_bytes=len(RSS),
    )
    declared, streamed = run(settings, engine, fake_time)
    assert declared.status == "failed" and "exceeds the" in (declared.error or "")
    assert streamed.status == "failed" and "(cut)" in (streamed.error or "")
    with session_scope(engine) as session:
        assert list_papers(session) == []


def test_hostile_feed_over_http_fails_alone(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    from tests.hostile_feeds import BILLION_LAUGHS

    feed_server.route("/lol", Response(body=BILLION_LAUGHS))
    feed_server.route("/html", Response(body=b"<!doctype html><html><body>login</body></html>"))
    feed_server.route("/ok", Response(body=THIRD_PARTY))
    settings = make_settings(
        [
            ("lol", "feed", feed_server.url("/lol")),
            ("html", "feed", feed_server.url("/html")),
            ("ok", "feed", feed_server.url("/ok")),
        ]
    )
    lol, html, ok = run(settings, engine, fake_time)
    assert (lol.status, html.status, ok.status) == ("failed", "failed", "ok")
    assert "entities" in (lol.error or "") and "HTML" in (html.error or "")


# --- SSRF -------------------------------------------------------------------------------------


def test_ssrf_schemes_and_hosts_refused(
    feed_server: FeedServer, other_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    # Same machine, other port and another name: not an allowed host, so never contacted.
    feed_server.route(
        "/jump",
        Response(302, headers={"Location": other_server.url("/internal", host="localhost")}),
    )
    feed_server.route("/gopher", Response(302, headers={"Location": "gopher://127.0.0.1:70/x"}))
    other_server.route("/internal", Response(body=THIRD_PARTY))
    settings = make_settings(
        [
            ("file", "feed", "file:///etc/passwd"),
            ("gopher", "feed", "gopher://127.0.0.1/"),
            ("jump", "feed", feed_server.url("/jump")),
            ("gopher-redirect", "feed", feed_server.url("/gopher")),
        ]
    )
    reports = {r.source: r for r in run(settings, engine, fake_time)}
    assert all(r.status == "failed" for r in reports.values())
    assert "scheme 'file'" in (reports["file"].error or "")
    assert "scheme 'gopher'" in (reports["gopher"].error or "")
    assert "host 'localhost' is not an allowed" in (reports["jump"].error or "")
    assert "scheme 'gopher'" in (reports["gopher-redirect"].error or "")
    assert other_server.requests == []
    assert reports["file"].requests == 0


def test_allowed_hosts_setting_admits_a_redirect_target(
    feed_server: FeedServer, other_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    feed_server.route(
        "/jump", Response(302, headers={"Location": other_server.url("/f", host="localhost")})
    )
    other_server.route("/f", Response(body=THIRD_PARTY))
    settings = make_settings(
        [("jump", "feed", feed_server.url("/jump"))], allowed_hosts=("localhost",)
    )
    assert run(settings, engine, fake_time)[0].new == 26
    assert len(other_server.requests) == 1


# --- politeness -------------------------------------------------------------------------------


def test_one_request_per_interval_per_host(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    for name in ("a", "b", "c"):
        feed_server.route(f"/{name}", Response(body=THIRD_PARTY))
    settings = make_settings(
        [(n, "feed", feed_server.url(f"/{n}")) for n in ("a", "b", "c")],
        min_interval_per_host_s=3.0,
    )
    reports = run(settings, engine, fake_time)
    assert [r.status for r in reports] == ["ok", "ok", "ok"]
    assert fake_time.sleeps == [3.0, 3.0]


def test_arxiv_api_paging_politeness_error_and_empty(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    feed_server.route("/api/query", Response(body=API_PAGE))
    feed_server.route("/api/bad", Response(400, API_ERROR))
    feed_server.route("/api/none", Response(body=API_EMPTY))
    settings = make_settings(
        [
            ("api", "arxiv-api", feed_server.url("/api/query?search_query=all:testing")),
            ("bad", "arxiv-api", feed_server.url("/api/bad?id_list=abc")),
            ("none", "arxiv-api", feed_server.url("/api/none?id_list=0000.0000")),
        ],
        max_items_per_feed=250,
    )
    api, bad, none = run(settings, engine, fake_time, source=None)
    starts = [r.query["start"][0] for r in feed_server.hits("/api/query")]
    assert starts == ["0", "100", "200"]  # paged until max_items_per_feed
    assert all(r.query["search_query"] == ["all:testing"] for r in feed_server.hits("/api/query"))
    assert api.status == "ok" and api.fetched == 250 and api.new == 100  # the same page thrice
    # The 3-second delay of arXiv's terms separates every API request, whatever the setting.
    assert all(s >= 3.0 for s in fake_time.sleeps) and len(fake_time.sleeps) >= 2
    assert (
        bad.status == "failed"
        and bad.error == "HTTP 400: arXiv API error: incorrect id format for abc"
    )
    assert none.status == "empty"


def test_since_adds_an_arxiv_date_window_and_hf_dates(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    feed_server.route("/api/query", Response(body=API_EMPTY))
    feed_server.route("/api/daily_papers", Response(body=HF))
    settings = make_settings(
        [
            ("api", "arxiv-api", feed_server.url("/api/query?search_query=cat:cs.LG")),
            ("hf", "hf-daily", feed_server.url("/api/daily_papers")),
        ]
    )
    since = datetime(2026, 6, 10, tzinfo=UTC)
    api, hf = run(settings, engine, fake_time, since=since)
    query = feed_server.hits("/api/query")[0].query["search_query"][0]
    assert query == "(cat:cs.LG) AND submittedDate:[202606100000 TO 202606120600]"
    dates = [r.query["date"][0] for r in feed_server.hits("/api/daily_papers")]
    assert dates == ["2026-06-10", "2026-06-11", "2026-06-12"]
    assert hf.status == "ok" and hf.new == 30 and hf.fetched == 90


def test_lookup_arxiv_ids_stores_reference_rows(
    feed_server: FeedServer, engine: Engine, fake_time: FakeTime
) -> None:
    feed_server.route("/api/query", Response(body=API_PAGE))
    result = asyncio.run(
        lookup_arxiv_ids(
            services_for(make_settings([]), engine, fake_time),
            ["arXiv:2202.12139v1", "https://arxiv.org/abs/2405.13786", "not-an-id"],
            api_url=feed_server.url("/api/query"),
            now=NOW,
        )
    )
    assert result.error is None and len(result.records) == 2  # capped at the ids asked for
    assert feed_server.hits("/api/query")[0].query["id_list"] == ["2202.12139,2405.13786"]
    with session_scope(engine) as session:
        assert {p.announce for p in list_papers(session)} == {"lookup"}
        assert recent_papers(session, since=NOW) == []


def test_unknown_source_name_is_reported(engine: Engine, fake_time: FakeTime) -> None:
    report = run(make_settings([]), engine, fake_time, source="nope")[0]
    assert report.failed and "no enabled source named 'nope'" in (report.error or "")


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("12") == 12.0
    assert (
        retry_after_seconds(
            "Wed, 21 Oct 2015 07:28:00 GMT", now=datetime(2015, 10, 21, 7, 27, tzinfo=UTC)
        )
        == 60.0
    )
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_fetcher_refuses_before_connecting() -> None:
    async def go() -> None:
        async with Fetcher(FetchSettings(), allowed_hosts={"example.org"}) as fetcher:
            for url in (
                "file:///etc/hostname",
                "http://169.254.169.254/latest",
                "ftp://example.org/x",
                "not a url",
            ):
                result = await fetcher.get(url)
                assert result.error and result.error.startswith("refused") and result.requests == 0

    asyncio.run(go())


# --- CLI --------------------------------------------------------------------------------------


def test_cli_fetch_table_json_and_exit_codes(
    feed_server: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.cli import app

    feed_server.route("/ok.xml", Response(body=THIRD_PARTY))
    feed_server.route("/down", Response(404))
    config = tmp_path / "digest.toml"
    config.write_text(
        "[fetch]\nmin_interval_per_host_s = 0.0\nretries = 0\n"
        f'[[sources]]\nname = "ok"\nkind = "feed"\nurl = "{feed_server.url("/ok.xml")}"\n'
        f'[[sources]]\nname = "down"\nkind = "feed"\nurl = "{feed_server.url("/down")}"\n'
    )
    monkeypatch.setenv("DIGEST_MODE", "dev")
    monkeypatch.setenv("DIGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("DIGEST_CONFIG", str(config))
    runner = CliRunner()
    assert runner.invoke(app, ["fetch"]).exit_code == 2  # not initialised: a one-line error
    init = runner.invoke(app, ["init"])
    assert init.exit_code == 0, init.output
    result = runner.invoke(app, ["fetch"])
    assert result.exit_code == 0, result.output  # one source failed, not all
    assert "ok" in result.output and "failed" in result.output
    result = runner.invoke(app, ["fetch", "--source", "down", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["status"] == "failed"
    result = runner.invoke(
        app,
        [
            "fetch",
            "--file",
            str(FIXTURES / "arxiv_rss2_quant-ph_2025-04-28.xml"),
            "--format",
            "arxiv-rss",
        ],
    )
    assert result.exit_code == 0 and "81" in result.output
    assert runner.invoke(app, ["fetch", "--file", "x.xml"]).exit_code == 1
    assert runner.invoke(app, ["fetch", "--since", "yesterday"]).exit_code == 1
    listing = runner.invoke(app, ["papers", "list", "--json"])
    papers = json.loads(listing.stdout)
    assert len(papers) == 26 + 81
    assert {"key", "abstract", "authors", "categories", "sources", "upvotes", "first_seen"} <= set(
        papers[0]
    )
    assert all(p["abstract"] for p in papers)
    shown = runner.invoke(app, ["papers", "show", "arXiv:2504.17830v1", "--json"])
    assert (
        json.loads(shown.stdout)["title"] == "Self-Adjoint Time Operator in a Weighted Energy Space"
    )
    assert runner.invoke(app, ["papers", "show", "9999.99999"]).exit_code == 1
