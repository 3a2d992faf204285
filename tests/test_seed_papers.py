"""Seed papers the store does not hold are fetched from the arXiv API (the polite fetcher,
recorded responses on a loopback HTTP server) and stored: from the subscribe form (its own
example 1706.03762), the manage page and `digest subscribers add --seed-paper`. A failed
lookup is one clear line and loses nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from digest.cli import app
from digest.db import make_engine
from digest.models import Paper, Subscriber
from digest.settings import FetchSettings
from digest.smtpd.sink import SmtpSink
from tests.feed_server import FeedServer, Response, running_server
from tests.web_support import Web, active_subscriber, add_papers, build_services

FIXTURES = Path(__file__).parent / "fixtures"
ATTENTION = json.loads((FIXTURES / "arxiv_api_id_1706.03762.json").read_text())["body"].encode(
    "latin-1"
)
API_ERROR = json.loads((FIXTURES / "arxivpy_id_abc_s0_m100_b79c8dcf6bc3.json").read_text())


@pytest.fixture
def arxiv() -> Iterator[FeedServer]:
    with running_server() as server:
        yield server


def _fetch_settings(server: FeedServer) -> FetchSettings:
    return FetchSettings(
        arxiv_api_url=server.url("/api/query"), min_interval_per_host_s=0, retries=0
    )


@pytest.fixture
def web_services(settings, arxiv):
    built = build_services(settings.model_copy(update={"fetch": _fetch_settings(arxiv)}))
    yield built
    built.close()


def _paper(engine, key: str) -> Paper | None:
    with Session(engine) as session:
        return session.exec(select(Paper).where(Paper.key == key)).first()


def test_the_subscribe_forms_own_example_seed_is_fetched_and_stored(web_services, arxiv):
    arxiv.route("/api/query", Response(body=ATTENTION))
    web = Web(web_services)
    try:
        assert "1706.03762" in web.client.get("/").text  # the form's example
        answer = web.subscribe("new@example.com", seed_papers="https://arxiv.org/abs/1706.03762")
        web.drain()
    finally:
        web.close()
    assert answer.status_code == 200
    [hit] = arxiv.hits("/api/query")
    assert hit.query["id_list"] == ["1706.03762"]
    paper = _paper(web_services.engine, "1706.03762")
    assert paper is not None and paper.title == "Attention Is All You Need"
    assert "Ashish Vaswani" in paper.authors and paper.announce == "lookup"


def test_the_manage_page_fetches_only_what_is_missing_and_a_failure_loses_nothing(
    web_services, arxiv
):
    arxiv.route("/api/query", Response(status=400, body=API_ERROR["body"].encode("latin-1")))
    add_papers(web_services)
    sid = active_subscriber(web_services, "reader@example.com")
    web = Web(web_services)
    try:
        path = f"/manage/{web_services.tokens.dumps('manage', sid)}"
        fields = dict(interests="attention", timezone="UTC", delivery_hour="7")
        saved = web.post_form(path, seed_papers="2611.00001 1706.03762", **fields)
        web.drain()
        assert saved.status_code == 200 and "Saved" in saved.text
        [hit] = arxiv.hits("/api/query")
        assert hit.query["id_list"] == ["1706.03762"]  # 2611.00001 is stored already
        assert _paper(web_services.engine, "1706.03762") is None
        with Session(web_services.engine) as session:
            assert session.get(Subscriber, sid).seed_papers == ["2611.00001", "1706.03762"]

        arxiv.route("/api/query", Response(body=ATTENTION))  # arXiv answers again
        web.post_form(path, seed_papers="2611.00001 1706.03762", **fields)
        web.drain()
        assert _paper(web_services.engine, "1706.03762") is not None
    finally:
        web.close()


def _env(tmp_path: Path, sink: SmtpSink, server: FeedServer) -> dict[str, str]:
    return {
        "DIGEST_MODE": "dev",
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'seeds.db'}",
        "DIGEST_SMTP_HOST": sink.host,
        "DIGEST_SMTP_PORT": str(sink.port),
        "DIGEST_FETCH_ARXIV_API_URL": server.url("/api/query"),
        "DIGEST_FETCH_MIN_INTERVAL_PER_HOST_S": "0",
        "DIGEST_FETCH_RETRIES": "0",
    }


def test_subscribers_add_fetches_the_seed_papers_it_does_not_find(tmp_path, smtp_sink, arxiv):
    env = _env(tmp_path, smtp_sink, arxiv)
    runner = CliRunner()
    assert runner.invoke(app, ["init"], env=env).exit_code == 0
    arxiv.route("/api/query", Response(body=ATTENTION))
    args = ["subscribers", "add", "ada@example.org", "--confirmed", "--seed-paper"]

    added = runner.invoke(app, [*args, "arXiv:1706.03762v5"], env=env)

    assert added.exit_code == 0, added.output
    assert "Fetched 1 seed paper(s) from arXiv." in added.output
    engine = make_engine(env["DIGEST_DATABASE_URL"])
    assert _paper(engine, "1706.03762").title == "Attention Is All You Need"

    arxiv.route("/api/query", Response(status=503, body=b"down"))
    failed = runner.invoke(app, [*args[:2], "bob@example.org", *args[3:], "2401.00001"], env=env)
    assert failed.exit_code == 0
    [line] = [x for x in failed.output.splitlines() if "Warning" in x]
    assert "could not fetch seed paper(s) 2401.00001 from arXiv (HTTP 503" in line
    assert "they stay in the profile" in line
    with Session(engine) as session:
        bob = session.exec(select(Subscriber).where(Subscriber.email == "bob@example.org")).one()
    assert bob.seed_papers == ["2401.00001"] and bob.status == "active"

    bad = runner.invoke(app, [*args[:2], "eve@example.org", *args[3:], "not-an-id"], env=env)
    assert bad.exit_code != 0 and "--seed-paper 'not-an-id': not an arXiv id" in bad.output


def test_the_next_fetch_retries_seeds_still_missing_only_from_a_fetched_host(settings, arxiv):
    import asyncio
    from dataclasses import replace

    from digest.usecases.seeds import retry_missing
    from tests.web_support import build_services

    fetch = _fetch_settings(arxiv)
    services = build_services(settings.model_copy(update={"fetch": fetch}))
    try:
        sid = active_subscriber(services, "reader@example.com")
        with Session(services.engine) as session:
            reader = session.get(Subscriber, sid)
            reader.seed_papers = ["1706.03762"]
            session.add(reader)
            session.commit()
        arxiv.route("/api/query", Response(body=ATTENTION))

        offline = asyncio.run(retry_missing(services))
        assert offline.fetched == [] and arxiv.hits("/api/query") == []  # not a fetched host

        allowed = fetch.model_copy(update={"allowed_hosts": ("127.0.0.1",)})
        online = services.settings.model_copy(update={"fetch": allowed})
        assert asyncio.run(retry_missing(replace(services, settings=online))).fetched == [
            "1706.03762"
        ]
        assert _paper(services.engine, "1706.03762") is not None
    finally:
        services.close()


def test_a_deployment_with_arxiv_sources_retries_seeds_at_the_next_fetch():
    from digest.settings import Settings, SourceSettings
    from digest.usecases.seeds import _fetches_from_arxiv

    rss = SourceSettings(name="arxiv", kind="arxiv-rss", url="https://rss.arxiv.org/rss/cs.LG")
    hf = SourceSettings(name="hf", kind="hf-daily", url="https://huggingface.co/api/daily_papers")
    assert _fetches_from_arxiv(Settings(mode="dev", sources=(rss, hf)))
    assert not _fetches_from_arxiv(Settings(mode="dev", sources=(hf,)))
