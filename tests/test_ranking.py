"""Ranking on small inputs with known answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from digest.ranking import (
    Candidate,
    Profile,
    RankParams,
    TextModel,
    compose_digest,
    rank,
    trending_scores,
)
from digest.ranking.topk import top_k, top_k_exact

PAPERS = [
    Candidate(
        "q1",
        "Low-bit quantization of language models",
        "We quantize large language model weights to four bits with little loss.",
        categories=("cs.LG",),
        upvotes=3,
    ),
    Candidate(
        "q2",
        "Quantization aware training for transformers",
        "Quantization during training keeps low-bit transformers accurate.",
        categories=("cs.LG",),
        upvotes=1,
    ),
    Candidate(
        "r1",
        "Robot grasping from vision",
        "Robotic manipulation policies learned from camera images grasp unseen objects.",
        categories=("cs.RO",),
        upvotes=40,
        authors=("Ada Lovelace",),
    ),
    Candidate(
        "d1",
        "Diffusion models for image generation",
        "Denoising diffusion generates high fidelity images.",
        categories=("cs.CV",),
        upvotes=12,
    ),
    Candidate(
        "g1",
        "Graph neural networks for molecules",
        "Message passing networks predict molecular properties.",
        categories=("cs.LG",),
        upvotes=0,
    ),
]
NO_DIVERSITY = RankParams(diversity=0.0)


def ids(picks):
    return [p.id for p in picks]


def test_empty_profile_gets_pure_trending_order():
    [picks] = rank(PAPERS, [Profile("u")], top_n=5)
    assert ids(picks) == ["r1", "d1", "q1", "q2", "g1"]
    assert all(p.relevance == 0 for p in picks)
    assert picks[0].why == "trending: 40 upvotes on Hugging Face"


def test_interest_text_finds_matching_papers_and_names_real_terms():
    [picks] = rank(
        PAPERS,
        [Profile("u", interests="quantization low-bit")],
        top_n=2,
        params=RankParams(trending_weight=0.0, diversity=0.0),
    )
    assert set(ids(picks)) == {"q1", "q2"}
    assert "matches: " in picks[0].why
    terms = picks[0].why.split("matches: ")[1].split(";")[0].split(", ")
    text = " ".join([PAPERS[0].title, PAPERS[0].abstract, PAPERS[1].title, PAPERS[1].abstract])
    # Whole phrases as the papers write them (e.g. "Low-bit quantization"), not stems.
    assert terms and all(t in text for t in terms)


def test_blend_extremes():
    profile = Profile("u", interests="quantization")
    [personal] = rank(
        PAPERS, [profile], top_n=5, params=RankParams(trending_weight=0.0, diversity=0.0)
    )
    [trending] = rank(PAPERS, [profile], top_n=5, params=RankParams(trending_weight=1.0))
    assert personal[0].id in {"q1", "q2"}
    # Without trending the score is the relevance on the subscriber's calibrated scale: the
    # same factor for every paper of the row, so the same order.
    factor = personal[0].score / personal[0].relevance
    assert [p.score for p in personal] == pytest.approx([p.relevance * factor for p in personal])
    assert ids(trending) == ["r1", "d1", "q1", "q2", "g1"]
    assert [p.score for p in trending] == pytest.approx([p.trending for p in trending])


def test_per_subscriber_trending_weight_overrides_default():
    profiles = [
        Profile("a", interests="quantization", trending_weight=1.0),
        Profile("b", interests="quantization"),
    ]
    a, b = rank(PAPERS, profiles, top_n=1, params=RankParams(trending_weight=0.0))
    assert a[0].id == "r1" and b[0].id in {"q1", "q2"}


def test_exclusions_likes_dislikes_and_delivered_never_returned():
    profile = Profile(
        "u", interests="quantization", like=("q1",), dislike=("d1",), exclude=frozenset({"r1"})
    )
    [picks] = rank(PAPERS, [profile], top_n=10)
    assert set(ids(picks)) == {"q2", "g1"}
    assert picks[0].id == "q2"


def test_like_drives_closeness_reason():
    [picks] = rank(
        PAPERS, [Profile("u", like=("q1",))], top_n=1, params=RankParams(trending_weight=0.0)
    )
    assert picks[0].id == "q2"
    assert "to “Low-bit quantization of language models”" in picks[0].why
    assert "trending" not in picks[0].why  # trending weight 0: it played no part


def test_categories_only_profile_ranks_category_matches_first_by_trending():
    [picks] = rank(PAPERS, [Profile("u", categories=("cs.LG",))], top_n=5)
    assert ids(picks)[:3] == ["q1", "q2", "g1"]
    assert "cs.LG, a category you follow" in picks[0].why


def test_followed_author_is_boosted_and_named():
    [picks] = rank(PAPERS, [Profile("u", authors=("ada  lovelace",))], top_n=1)
    assert picks[0].id == "r1"
    assert "by Ada Lovelace, whom you follow" in picks[0].why


def test_muted_words_are_a_hard_filter():
    [picks] = rank(
        PAPERS, [Profile("u", interests="quantization", muted=("Quantization",))], top_n=10
    )
    assert not {"q1", "q2"} & set(ids(picks))


def test_mmr_removes_a_near_duplicate():
    twin = Candidate(
        "q1b",
        PAPERS[0].title,
        PAPERS[0].abstract + " Code is released.",
        categories=("cs.LG",),
        upvotes=3,
    )
    papers = [*PAPERS, twin]
    profile = Profile("u", interests="quantization low-bit language models")
    [plain] = rank(
        papers, [profile], top_n=2, params=RankParams(trending_weight=0.0, diversity=0.0)
    )
    [diverse] = rank(
        papers, [profile], top_n=2, params=RankParams(trending_weight=0.0, diversity=1.0)
    )
    assert set(ids(plain)) == {"q1", "q1b"}
    assert len({"q1", "q1b"} & set(ids(diverse))) == 1
    assert "q2" in ids(diverse)


def test_compose_digest_labels_trending_fill():
    [picks] = compose_digest(
        PAPERS,
        [Profile("u", interests="quantization")],
        top_n=4,
        min_relevance=0.05,
        params=NO_DIVERSITY,
    )
    kinds = [p.kind for p in picks]
    assert kinds[0] == "match" and "trending" in kinds
    assert kinds == sorted(kinds)  # matches first, then the fill
    fill = [p for p in picks if p.kind == "trending"]
    assert fill[0].id == "r1" and fill[0].why == "trending: 40 upvotes on Hugging Face"
    assert len(set(ids(picks))) == len(picks) == 4


def test_compose_digest_for_empty_profile_is_all_trending():
    [picks] = compose_digest(PAPERS, [Profile("u", exclude=frozenset({"r1"}))], top_n=3)
    assert ids(picks) == ["d1", "q1", "q2"]
    assert {p.kind for p in picks} == {"trending"}


def test_unknown_liked_ids_and_no_candidates():
    [picks] = rank(PAPERS, [Profile("u", like=("nope",))], top_n=2)
    assert ids(picks) == ["r1", "d1"]  # nothing usable: trending order
    assert rank([], [Profile("u")]) == [[]]


def test_trending_signals_velocity_likes_and_recency():
    now = datetime(2025, 1, 10, tzinfo=UTC)
    papers = [
        Candidate("old", "a", upvotes=50, upvotes_prev=50, published=now - timedelta(days=9)),
        Candidate("new", "b", upvotes=50, upvotes_prev=10, published=now),
        Candidate("liked", "c", liked_by=5, published=now),
        Candidate("none", "d"),
    ]
    trend = trending_scores(papers, now=now)
    assert trend.argmax() == 1 and trend[1] == 1.0
    assert trend[0] < trend[1] and trend[2] > 0 and trend[3] == 0
    assert np.all((trend >= 0) & (trend <= 1))
    assert not trending_scores([Candidate("x", "y")]).any()


def test_text_model_round_trip_and_reuse():
    model = TextModel.fit([f"{p.title} {p.abstract}" for p in PAPERS])
    again = TextModel.from_bytes(model.to_bytes())
    assert list(again.terms) == list(model.terms)
    profile = Profile("u", interests="diffusion images")
    assert ids(rank(PAPERS, [profile], model=again)[0]) == ids(
        rank(PAPERS, [profile], model=model)[0]
    )


def test_top_k_threshold_path_matches_full_sort():
    rng = np.random.default_rng(0)
    scores = rng.random((300, 2000)).astype(np.float32)
    scores[5, :] = 0.5  # all ties: exact fallback
    scores[7, :1990] = -np.inf  # fewer finite than asked
    got = top_k(scores, 20)
    want = top_k_exact(scores, 20)
    np.testing.assert_array_equal(
        np.take_along_axis(scores, got, 1), np.take_along_axis(scores, want, 1)
    )
    np.testing.assert_array_equal(got[5], want[5])
