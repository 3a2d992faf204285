"""Followed authors rank first, whatever else the profile says; names match across forms."""

from __future__ import annotations

from dataclasses import replace

from digest.ranking import Profile, compose_digest, rank
from digest.ranking.authors import AuthorIndex, author_key
from tests.test_ranking import PAPERS, ids

GRAPHS = "g1"  # off-topic for a quantization profile, and nobody voted for it
BY_BAEVA = [
    replace(p, authors=("Anna V. Baeva", "Kamil Hajdu\\v{s}ek")) if p.id == GRAPHS else p
    for p in PAPERS
]
QUANTIZATION = "quantization low-bit language models transformers"


def test_a_followed_authors_paper_is_first_over_strong_matches_and_trending():
    profiles = [
        Profile("text", interests=QUANTIZATION, authors=("Anna V. Baeva",)),
        Profile("likes", like=("q1", "q2"), authors=("Anna V. Baeva",)),
        Profile("trend", authors=("Anna V. Baeva",), trending_weight=0.9),
        Profile("cats", categories=("cs.RO", "cs.CV"), authors=("Anna V. Baeva",)),
    ]
    for picks in rank(BY_BAEVA, profiles, top_n=5):
        assert picks[0].id == GRAPHS
        assert picks[0].why.startswith("by Anna V. Baeva, whom you follow")
    # The rest keep their order: the quantization papers follow for the text profile.
    [text] = rank(BY_BAEVA, profiles[:1], top_n=3)
    assert set(ids(text)[1:]) == {"q1", "q2"}


def test_a_followed_paper_counts_as_a_match_in_the_email():
    [picks] = compose_digest(
        BY_BAEVA,
        [Profile("u", interests=QUANTIZATION, authors=("K. Hajdušek",))],
        top_n=3,
        min_relevance=0.25,
    )
    assert picks[0].id == GRAPHS and picks[0].kind == "match"
    assert picks[0].why.startswith("by Kamil Hajdušek, whom you follow")


def test_names_match_across_tex_accents_case_and_initials():
    for follow in ("kamil hajdusek", "K. Hajdušek", "Hajdu\\v{s}ek, Kamil", "HAJDUŠEK, K."):
        [picks] = rank(BY_BAEVA, [Profile("u", authors=(follow,))], top_n=1)
        assert picks[0].id == GRAPHS, follow
    [picks] = rank(BY_BAEVA, [Profile("u", authors=("A. Baeva",))], top_n=1)
    assert picks[0].id == GRAPHS


def test_initials_match_only_where_unambiguous_and_full_names_must_agree():
    index = AuthorIndex(map(author_key, ["Anna V. Baeva", "Alexei Baeva", "Boris Ivanov"]))
    assert index.row_of("A. V. Baeva") == index.rows["anna v baeva"]
    assert index.row_of("A. Baeva") is None  # Anna or Alexei: ambiguous today
    assert index.row_of("Anton V. Baeva") is None  # a different person
    assert index.row_of("B. Ivanov") == index.rows["boris ivanov"]
    assert index.row_of("Ivanov") is None
    written_with_initials = AuthorIndex([author_key("A. V. Baeva")])
    assert written_with_initials.row_of("Anna V. Baeva") == 0


def test_a_muted_category_is_never_shown_not_even_as_trending_fill():
    [picks] = compose_digest(
        PAPERS,
        [Profile("u", interests="diffusion images", muted=("cs.CV",))],
        top_n=5,
        min_relevance=0.25,
    )
    assert "d1" not in ids(picks)
    [plain] = rank(PAPERS, [Profile("u", muted=("CS.cv",))], top_n=5)
    assert "d1" not in ids(plain) and len(plain) == 4
