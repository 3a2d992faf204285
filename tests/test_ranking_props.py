"""Properties of the ranker on generated inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.ranking import Candidate, Profile, RankParams, rank
from digest.ranking.topk import top_k, top_k_exact

WORDS = [
    "quantization",
    "robot",
    "diffusion",
    "graph",
    "language",
    "vision",
    "sparse",
    "attention",
    "protein",
    "speech",
]

papers_st = st.lists(
    st.tuples(
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
        st.none() | st.integers(0, 500),
        st.sampled_from(["cs.LG", "cs.CV", "cs.RO"]),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(papers=papers_st, data=st.data())
def test_scores_finite_and_rated_or_delivered_never_returned(papers, data):
    candidates = [
        Candidate(
            f"p{i}", " ".join(words), " ".join(reversed(words)), upvotes=up, categories=(cat,)
        )
        for i, (words, up, cat) in enumerate(papers)
    ]
    ids = [c.id for c in candidates]
    profiles = []
    for u in range(data.draw(st.integers(1, 4))):
        profiles.append(
            Profile(
                f"u{u}",
                interests=" ".join(data.draw(st.lists(st.sampled_from(WORDS), max_size=3))),
                like=tuple(data.draw(st.lists(st.sampled_from(ids), max_size=3))),
                dislike=tuple(data.draw(st.lists(st.sampled_from(ids), max_size=2))),
                categories=tuple(
                    data.draw(st.lists(st.sampled_from(["cs.LG", "cs.RO"]), max_size=1))
                ),
                exclude=frozenset(data.draw(st.lists(st.sampled_from(ids), max_size=3))),
                trending_weight=data.draw(st.none() | st.floats(0, 1)),
            )
        )
    params = RankParams(diversity=data.draw(st.sampled_from([0.0, 0.3, 1.0])))
    top_n = data.draw(st.integers(1, 12))
    for profile, picks in zip(
        profiles, rank(candidates, profiles, top_n=top_n, params=params), strict=True
    ):
        banned = set(profile.like) | set(profile.dislike) | profile.exclude
        assert not banned & {p.id for p in picks}
        assert len(picks) == min(top_n, len(set(ids) - banned))
        assert len({p.id for p in picks}) == len(picks)
        for p in picks:
            assert np.isfinite([p.score, p.relevance, p.trending]).all()
            assert p.why
        if params.diversity == 0:
            assert [p.score for p in picks] == sorted((p.score for p in picks), reverse=True)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 30),
    cols=st.integers(1, 1200),
    k=st.integers(1, 25),
    seed=st.integers(0, 2**16),
    levels=st.sampled_from([0, 3, 50]),
)
def test_top_k_equals_full_sort(rows, cols, k, seed, levels):
    rng = np.random.default_rng(seed)
    scores = rng.random((rows, cols)).astype(np.float32)
    if levels:  # many ties
        scores = np.round(scores * levels).astype(np.float32)
    scores[rng.random((rows, cols)) < 0.05] = -np.inf
    got = top_k(scores, k)
    want = top_k_exact(scores, k)
    np.testing.assert_array_equal(
        np.take_along_axis(scores, got, 1), np.take_along_axis(scores, want, 1)
    )
