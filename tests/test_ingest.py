"""Ingestion into a real database: counts, merging across sources, replacements, bad input.

Store tests run on a SQLite file and, where DIGEST_TEST_DATABASE_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import select

from digest import bootstrap
from digest.bootstrap import Services
from digest.db import session_scope, upgrade
from digest.models import FeedState, Paper
from digest.settings import Settings
from digest.sources import KINDS
from digest.sources.base import PaperRecord
from digest.sources.ids import paper_key
from digest.store.papers import get_paper, list_papers, papers_by_keys, recent_papers
from digest.usecases.ingest import ingest_bytes, ingest_file
from digest.usecases.paper_merge import upsert_papers
from tests.hostile_feeds import corpus, item, rss, xxe

FIXTURES = Path(__file__).parent / "fixtures"
RSS_SAMPLE = FIXTURES / "arxiv_rss2_quant-ph_2025-04-28.xml"
HF_SAMPLE = FIXTURES / "hf_daily_papers_api_limit30_2026-06-12.json"
DAY1 = datetime(2026, 6, 12, 6, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def built(database_url: str) -> Services:
    services = bootstrap.build(Settings(mode="dev", database_url=database_url))
    upgrade(services.engine)
    return services


@pytest.fixture
def services(database_url: str) -> Iterator[Services]:
    services = built(database_url)
    yield services
    services.close()


@pytest.fixture
def engine(services: Services) -> Engine:
    return services.engine


def snapshot(engine: Engine, *, ignore: tuple[str, ...] = ("last_seen",)) -> dict[str, Any]:
    with session_scope(engine) as session:
        return {
            p.key: {k: v for k, v in p.model_dump().items() if k not in ignore}
            for p in list_papers(session)
        }


def feed_state(engine: Engine, source: str) -> FeedState:
    with session_scope(engine) as session:
        state = session.exec(select(FeedState).where(FeedState.source == source)).one()
        session.expunge(state)
        return state


def arxiv_item(arxiv_id: str, version: int, announce: str, cats: list[str], title: str = "") -> str:
    categories = "".join(f"<category>{c}</category>" for c in cats)
    return (
        f"<item><title>{title or 'Paper ' + arxiv_id}</title>"
        f"<link>https://arxiv.org/abs/{arxiv_id}</link>"
        f"<description>arXiv:{arxiv_id}v{version} Announce Type: {announce} \n"
        f"Abstract: Abstract of {arxiv_id} v{version}.</description>"
        f"<guid isPermaLink='false'>oai:arXiv.org:{arxiv_id}v{version}</guid>{categories}"
        f"<arxiv:announce_type>{announce}</arxiv:announce_type>"
        "<dc:creator>Ada Lovelace, Alan Turing</dc:creator></item>"
    )


def arxiv_feed(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>t</title><link>http://rss.arxiv.org/rss/x</link>{''.join(items)}"
        "</channel></rss>"
    ).encode()


def hf_items(arxiv_id: str, upvotes: int, stars: int | None = None) -> bytes:
    paper: dict[str, Any] = {
        "id": arxiv_id,
        "title": f"Paper {arxiv_id}",
        "upvotes": upvotes,
        "summary": "A much longer abstract from Hugging Face that is longer than the arXiv one.",
        "authors": [{"name": "Ada Lovelace"}],
        "ai_summary": "TL;DR.",
        "publishedAt": "2026-06-10T00:00:00.000Z",
    }
    if stars is not None:
        paper["githubRepo"], paper["githubStars"] = "https://github.com/a/b", stars
    return json.dumps([{"paper": paper, "numComments": 2}]).encode()


# --- the recorded samples ---------------------------------------------------------------------


def test_rss_sample_counts_and_rerun_changes_nothing(services: Services, engine: Engine) -> None:
    report = ingest_file(services, RSS_SAMPLE, kind="arxiv-rss", source="quant-ph", now=DAY1)
    # Every one of the 81 rows is new to the store (the 31 replacements too, though no edition
    # announces them): the first run must not call them "updated".
    assert (report.status, report.fetched, report.new, report.changed) == ("ok", 81, 81, 0)
    before = snapshot(engine)
    with session_scope(engine) as session:
        fresh = recent_papers(session, since=DAY1)
        assert len(fresh) == 50  # 40 new + 10 cross; the 31 replacements are never announced
        assert {p.announce for p in fresh} == {"new", "cross"}
        assert sum(1 for p in list_papers(session) if p.announce == "replace") == 31
    again = ingest_file(services, RSS_SAMPLE, kind="arxiv-rss", source="quant-ph", now=DAY2)
    assert (again.new, again.changed, again.unchanged, again.fetched) == (0, 0, 81, 81)
    assert snapshot(engine) == before  # nothing but last_seen moved
    with session_scope(engine) as session:
        assert {p.last_seen for p in list_papers(session)} == {DAY2}
        assert recent_papers(session, since=DAY2) == []
    state = feed_state(engine, "quant-ph")
    assert (state.last_status, state.fetched, state.new, state.last_error) == ("ok", 81, 0, None)


def test_hf_sample_and_upvotes_move_but_nothing_else(services: Services, engine: Engine) -> None:
    report = ingest_file(services, HF_SAMPLE, kind="hf-daily", source="hf", now=DAY1)
    assert (report.new, report.fetched) == (30, 30)
    data = json.loads(HF_SAMPLE.read_bytes())
    for entry in data:
        entry["paper"]["upvotes"] += 7
    later = DAY1 + timedelta(days=2)
    report = ingest_bytes(
        services, json.dumps(data).encode(), kind="hf-daily", source="hf", now=later
    )
    assert (report.new, report.changed, report.unchanged) == (0, 30, 0)
    with session_scope(engine) as session:
        paper = get_paper(session, "2606.12730")
        assert paper is not None
        assert (paper.upvotes, paper.upvotes_prev, paper.upvotes_at) == (12, 5, DAY1)
        assert paper.first_seen == DAY1 and paper.code_url and paper.github_stars == 1


# --- merging ----------------------------------------------------------------------------------


def test_cross_listed_paper_in_three_feeds_and_hf_is_one_row(
    services: Services, engine: Engine
) -> None:
    pid = "2606.12730"
    feeds = {
        "cs.LG": arxiv_feed(arxiv_item(pid, 1, "new", ["cs.LG", "cs.CL"])),
        "cs.CL": arxiv_feed(arxiv_item(pid, 1, "cross", ["cs.CL", "cs.LG"])),
        "cs.AI": arxiv_feed(arxiv_item(pid, 1, "cross", ["cs.AI"])),
    }
    for name, data in feeds.items():
        ingest_bytes(services, data, kind="arxiv-rss", source=f"arxiv-{name}", now=DAY1)
    ingest_bytes(services, hf_items(pid, 3, stars=10), kind="hf-daily", source="hf", now=DAY1)
    ingest_bytes(services, hf_items(pid, 41, stars=12), kind="hf-daily", source="hf", now=DAY2)
    with session_scope(engine) as session:
        rows = list_papers(session)
        assert len(rows) == 1
        paper = rows[0]
        assert paper.categories == ["cs.LG", "cs.CL", "cs.AI"]
        assert paper.sources == ["arxiv-cs.LG", "arxiv-cs.CL", "arxiv-cs.AI", "hf"]
        assert paper.announce == "new" and paper.first_seen == DAY1 and paper.version == 1
        assert paper.upvotes == 41 and paper.upvotes_prev == 3 and paper.github_stars == 12
        assert paper.authors == ["Ada Lovelace", "Alan Turing"]  # the fuller author list stays
        assert paper.abstract.startswith("A much longer abstract")  # longest wins
        assert paper.ai_summary == "TL;DR." and paper.comments == 2


def test_one_batch_with_duplicates_merges_before_writing(engine: Engine) -> None:
    records = [
        PaperRecord(
            key="2401.00001", title="T", source="a", categories=("cs.LG",), announce="cross"
        ),
        PaperRecord(key="2401.00001", title="T", source="b", categories=("cs.CL",), announce="new"),
    ]
    with session_scope(engine) as session:
        counts = upsert_papers(session, records, now=DAY1)
    assert (counts.new, counts.changed, counts.skipped) == (1, 0, 0)
    with session_scope(engine) as session:
        paper = get_paper(session, paper_key("arXiv:2401.00001v1"))
        assert paper and paper.categories == ["cs.LG", "cs.CL"] and paper.announce == "new"
        assert paper.sources == ["a", "b"]


def test_replacement_updates_version_but_is_never_reannounced(
    services: Services, engine: Engine
) -> None:
    pid = "2606.00001"
    ingest_bytes(
        services,
        arxiv_feed(arxiv_item(pid, 1, "new", ["cs.LG"])),
        kind="arxiv-rss",
        source="arxiv",
        now=DAY1,
    )
    report = ingest_bytes(
        services,
        arxiv_feed(arxiv_item(pid, 2, "replace", ["cs.LG"], title="Retitled")),
        kind="arxiv-rss",
        source="arxiv",
        now=DAY2,
    )
    assert (report.new, report.changed) == (0, 1)
    with session_scope(engine) as session:
        paper = get_paper(session, pid)
        assert paper and paper.version == 2 and paper.announce == "new"
        assert paper.first_seen == DAY1 and paper.title == "Retitled"
        assert paper.abstract  # same length: the stored text stays
        assert [p.key for p in recent_papers(session, since=DAY2)] == []
        assert [p.key for p in recent_papers(session, since=DAY1)] == [pid]


def test_replacement_of_unknown_paper_is_stored_but_never_announced(
    services: Services, engine: Engine
) -> None:
    report = ingest_bytes(
        services,
        arxiv_feed(arxiv_item("2606.00002", 3, "replace-cross", ["cs.CL"])),
        kind="arxiv-rss",
        source="arxiv",
        now=DAY1,
    )
    assert (report.new, report.changed) == (1, 0)  # never stored before: a new row
    with session_scope(engine) as session:
        paper = get_paper(session, "2606.00002")
        assert paper and paper.announce == "replace" and paper.version == 3
        assert recent_papers(session, since=DAY1) == []


def test_store_never_loses_stored_text(engine: Engine) -> None:
    full = PaperRecord(
        key="2401.00002",
        title="Title",
        source="a",
        abstract="Long abstract text.",
        authors=("A", "B"),
        url="https://arxiv.org/abs/2401.00002",
    )
    bare = PaperRecord(key="2401.00002", title="Other title", source="b")
    with session_scope(engine) as session:
        upsert_papers(session, [full], now=DAY1)
    with session_scope(engine) as session:
        counts = upsert_papers(session, [bare], now=DAY2)
    assert counts.changed == 1  # a new source joined
    with session_scope(engine) as session:
        paper = get_paper(session, "2401.00002")
        assert paper and paper.title == "Title" and paper.abstract == "Long abstract text."
        assert paper.authors == ["A", "B"] and paper.url and paper.sources == ["a", "b"]
        found = papers_by_keys(session, [paper_key(k) for k in ("2401.00002v3", "9999.99999")])
        assert list(found) == ["2401.00002"]
    with session_scope(engine) as session:
        counts = upsert_papers(session, [PaperRecord(key="", title="x", source="s")], now=DAY2)
    assert counts.skipped == 1


def test_text_with_nul_and_surrogates_is_storable(services: Services, engine: Engine) -> None:
    # PostgreSQL refuses NUL in text and UTF-8 refuses lone surrogates: both must be gone.
    data = json.dumps(
        [{"paper": {"id": "2401.00003", "title": "a\x00b\ud800c", "summary": "x\x01y"}}]
    ).encode()
    report = ingest_bytes(services, data, kind="hf-daily", source="hf", now=DAY1)
    assert report.status == "ok"
    with session_scope(engine) as session:
        paper = get_paper(session, "2401.00003")
        assert paper and (paper.title, paper.abstract) == ("abc", "xy")


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "data", "outcome"), corpus(), ids=[c[0] for c in corpus()]
)
def test_hostile_corpus_recorded_and_nothing_lost(
    services: Services, engine: Engine, name: str, kind: str, data: bytes, outcome: str
) -> None:
    ingest_file(services, RSS_SAMPLE, kind="arxiv-rss", source="quant-ph", now=DAY1)
    before = snapshot(
        engine,
        ignore=(
            "last_seen",
            "sources",
            "categories",
            "abstract",
            "authors",
            "title",
            "upvotes",
            "upvotes_at",
            "upvotes_prev",
        ),
    )
    texts_before = snapshot(engine)
    report = ingest_bytes(services, data, kind=kind, source="hostile", now=DAY2)
    assert report.status == outcome
    state = feed_state(engine, "hostile")
    assert state.last_status == outcome and state.last_fetch_at == DAY2
    if outcome != "ok":
        assert state.last_error and "\n" not in state.last_error and len(state.last_error) <= 300
    after = snapshot(engine)
    for key, row in texts_before.items():
        if name == "truncated":
            # Same feed again, half of it: rows seen again only gain, never lose.
            assert len(after[key]["abstract"]) >= len(row["abstract"])
        else:
            assert after[key] == row
    assert set(before) <= set(after)


def test_xxe_local_file_bytes_never_stored(
    services: Services, engine: Engine, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOP-SECRET-91ab")
    report = ingest_bytes(services, xxe(secret), kind="feed", source="xxe", now=DAY1)
    assert report.status == "failed" and "entities" in (report.error or "")
    assert "TOP-SECRET" not in json.dumps(snapshot(engine), default=str)
    assert "TOP-SECRET" not in (feed_state(engine, "xxe").last_error or "")


def test_missing_file_and_unknown_format_are_reported(
    services: Services, engine: Engine, tmp_path: Path
) -> None:
    missing = ingest_file(services, tmp_path / "nope.xml", kind="feed", now=DAY1)
    assert missing.status == "failed" and "cannot read" in (missing.error or "")
    unknown = ingest_file(services, RSS_SAMPLE, kind="atom", now=DAY1)
    assert unknown.status == "failed" and "unknown format" in (unknown.error or "")


def test_partial_feed_keeps_validators_out_and_reason_in(
    services: Services, engine: Engine
) -> None:
    data = rss(item("", "") + item("Fine", "https://example.org/fine"))
    report = ingest_bytes(services, data, kind="feed", source="p", now=DAY1)
    assert (report.status, report.new, report.skipped) == ("partial", 1, 1)
    assert "skipped" in (feed_state(engine, "p").last_error or "")


# --- property: nothing escapes ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = built(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}")
    yield services
    services.close()


xml_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40).map(
    lambda s: s.replace("&", "&amp;").replace("<", "&lt;")
)
rss_docs = st.builds(
    lambda items: rss("".join(item(t, link, d) for t, link, d in items)),
    st.lists(
        st.tuples(
            xml_text, st.sampled_from(["https://arxiv.org/abs/2401.00001v2", "x", ""]), xml_text
        ),
        max_size=4,
    ),
)


@given(st.one_of(st.binary(max_size=3000), rss_docs), st.sampled_from(KINDS))
@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_ingest_bytes_never_raises(fuzz_services: Services, data: bytes, kind: str) -> None:
    report = ingest_bytes(fuzz_services, data, kind=kind, source=f"fuzz-{kind}", now=DAY1)
    assert report.status in ("ok", "partial", "empty", "failed")
    assert report.error is None or "\n" not in report.error
    with session_scope(fuzz_services.engine) as session:
        for paper in session.exec(select(Paper)).all():
            assert "\x00" not in paper.title + paper.abstract
