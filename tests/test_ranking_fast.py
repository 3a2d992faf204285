"""The fast paths of the ranker equal the plain computations they replace."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import normalize

from digest.ranking import Candidate, Profile, RankParams, TextModel, chunks, rank_result
from digest.ranking.context import build_context
from digest.ranking.profiles import build_batch
from digest.ranking.topk import top_k, top_k_exact

SAMPLE = Path(__file__).parent / "fixtures" / "papers-sample-small.jsonl"


def sample_papers() -> list[Candidate]:
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    cats = ["cs.LG", "cs.CL", "cs.CV", "stat.ML"]
    return [
        Candidate(
            str(r["id"]),
            r["title"],
            r["abstract"],
            categories=(cats[i % 4], cats[(i + 1) % 4]) if i % 3 else (cats[i % 4],),
            upvotes=(i * 7) % 5,
        )
        for i, r in enumerate(rows)
    ]


def test_fast_tfidf_equals_scikit_learn_transform():
    papers = sample_papers()
    model = TextModel.fit([f"{p.title}. {p.abstract}" for p in papers])
    texts = [
        "Quantization quantization of LARGE language-models!",
        "",
        "the and of",
        "Ünïcödé naïve café İstanbul résumé",
        "x y z",
        "model\nmodels\tmodel's",
        *[p.abstract for p in papers[:20]],
        "graph neural networks " * 5,
    ]
    got = model.tfidf(texts)
    want = normalize(model.vectorizer.transform(texts)).astype(np.float32).tocsr()
    want.sort_indices()
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)


def test_profiles_to_matrices_weights_and_bans():
    papers = sample_papers()
    context = build_context(papers)
    a, b, c = (p.id for p in papers[:3])
    profiles = [
        Profile("u0", like=(a, b, a, "unknown"), dislike=(c,), exclude=frozenset({"nope"})),
        Profile("u1", like=(a,), dislike=(a,)),  # liked and disliked: the two sum
        Profile("u2", categories=("CS.lg", "nope"), muted=("quantization",)),
        Profile("u3"),
    ]
    batch = build_batch(profiles, context, RankParams(dislike_weight=0.5))
    likes = batch.likes.toarray()
    j = context.pool_index
    assert likes[0, j[a]] == likes[0, j[b]] == pytest.approx(0.5)
    assert likes[0, j[c]] == pytest.approx(-0.5)
    assert likes[1, j[a]] == pytest.approx(0.5)
    assert np.count_nonzero(likes[2:]) == 0
    banned = batch.banned.toarray()
    assert set(np.flatnonzero(banned[0])) == {context.index[x] for x in (a, b, c)}
    muted = [k for k, t in enumerate(context.texts) if "quantization" in t]
    assert set(np.flatnonzero(banned[2])) == set(muted)
    assert batch.categories.toarray()[2].sum() == 1
    assert batch.empty().tolist() == [False, False, False, True]


def test_dense_category_boost_equals_the_sparse_path(monkeypatch):
    papers = sample_papers()
    profiles = [
        Profile("a", categories=("cs.LG",)),
        Profile("b", categories=("cs.CV", "stat.ML"), interests="language models"),
        Profile("c", interests="image segmentation"),
        Profile("d"),
    ]
    dense = rank_result(papers, profiles, top_n=15)
    monkeypatch.setattr(chunks, "category_dense", lambda context: None)
    sparse_path = rank_result(papers, profiles, top_n=15)
    np.testing.assert_array_equal(dense.columns, sparse_path.columns)
    np.testing.assert_allclose(dense.scores, sparse_path.scores, rtol=1e-6)
    np.testing.assert_allclose(dense.relevance, sparse_path.relevance, rtol=1e-6)


def test_top_k_with_ties_at_the_bar_and_signed_zeros():
    rng = np.random.default_rng(5)
    scores = np.round(rng.random((64, 3000)) * 4).astype(np.float32) / 4  # 5 levels
    scores[3] = 0.0
    scores[3, ::2] = -0.0  # equal to 0.0: ties still go to the lower column
    scores[4, 10:] = -np.inf
    scores[5] = rng.random(3000).astype(np.float32)
    scores[5, :2990] = -np.inf
    for k in (1, 10, 20):
        np.testing.assert_array_equal(top_k(scores, k), top_k_exact(scores, k))
