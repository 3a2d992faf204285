"""A narrow field is never drowned by trending papers (the recorded quant-ph and HF feeds).

The store of the issue that found it: the recorded arXiv quant-ph RSS (81 papers) beside the
recorded Hugging Face daily papers (30 ML papers with upvotes), ranked with the default text
backend and the default ranking settings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from digest import sources
from digest.ranking import Candidate, Profile, compose_digest, fit_for, semantic
from digest.settings import RankingSettings
from digest.usecases.digests import params_for
from tests.test_semantic import need_semantic

FIXTURES = Path(__file__).parent / "fixtures"
QUANTUM = "quantum error correction, surface codes, entanglement distillation, quantum LDPC codes"
AGENTS = "LLM agents, tool use and planning with large language models"


@pytest.fixture(scope="module")
def store() -> dict[str, Candidate]:
    records = [
        *sources.parse(
            "arxiv-rss", (FIXTURES / "arxiv_rss2_quant-ph_2025-04-28.xml").read_bytes()
        ).records,
        *sources.parse(
            "hf-daily", (FIXTURES / "hf_daily_papers_api_limit30_2026-06-12.json").read_bytes()
        ).records,
    ]
    return {
        r.key: Candidate(
            id=r.key,
            title=r.title,
            abstract=r.abstract,
            authors=r.authors,
            categories=r.categories,
            upvotes=r.upvotes,
        )
        for r in records
    }


def digests(store: dict[str, Candidate], profiles: list[Profile], backend: str = "both"):
    need_semantic()
    settings = RankingSettings(text_backend=backend)
    papers = list(store.values())
    model = semantic.backend_for(
        fit_for(papers, dims=semantic.lsa_dims(backend)),
        papers,
        semantic.MemoryEmbeddings(),
        backend=backend,
        weight=settings.semantic_weight,
    )
    return compose_digest(
        papers,
        profiles,
        top_n=settings.papers_per_digest,
        min_relevance=settings.min_relevance,
        params=params_for(settings),
        model=model,
    )


def is_hf(paper: Candidate) -> bool:
    return paper.upvotes is not None


def test_a_quantum_subscribers_digest_is_quant_ph_papers(store) -> None:
    [picks] = digests(store, [Profile("q", interests=QUANTUM)])

    assert len(picks) == 10
    assert all("quant-ph" in store[p.id].categories for p in picks), [p.why for p in picks]
    # Every pick is a match of the field: no "only N matched" and no trending fill.
    assert all(p.kind == "match" for p in picks)
    # Reasons are whole phrases as the papers write them, not stems or overlapping bigrams.
    assert picks[0].why.startswith("matches: ")
    assert "quantum error correction" in picks[0].why.lower()
    assert "quantum error, error correction" not in picks[0].why


def test_an_llm_agents_subscriber_gets_hugging_face_papers_lifted_by_upvotes(store) -> None:
    [picks] = digests(store, [Profile("ml", interests=AGENTS)])

    assert len(picks) == 10
    assert all(is_hf(store[p.id]) for p in picks)
    # Trending lifts among the relevant ones: the most upvoted agents paper comes first.
    assert store[picks[0].id].upvotes == max(store[p.id].upvotes for p in picks)


def test_a_categories_only_profile_gets_its_category(store) -> None:
    [picks] = digests(store, [Profile("c", categories=("quant-ph",))])

    assert len(picks) == 10
    assert all("quant-ph" in store[p.id].categories for p in picks)
    assert all(p.why == "in quant-ph, a category you follow" for p in picks)


def test_trending_weight_one_gives_the_upvote_order(store) -> None:
    [picks] = digests(store, [Profile("t", interests=QUANTUM, trending_weight=1.0)])

    votes = [store[p.id].upvotes for p in picks]
    assert votes == sorted((p.upvotes for p in store.values() if p.upvotes), reverse=True)[:10]
    assert all(p.why.startswith("trending: ") and "on Hugging Face" in p.why for p in picks)


def test_a_field_absent_today_gets_labelled_fill_with_votes_only(store) -> None:
    """A subscriber whose field has nothing today: few or no matches, then trending papers,
    each with its votes; never a paper nobody voted for called trending."""
    [picks] = digests(store, [Profile("b", interests="coral reef ecology and fish larvae")])

    fill = [p for p in picks if p.kind == "trending"]
    assert fill, [p.why for p in picks]
    assert all(store[p.id].upvotes for p in fill)
    assert all(p.why == f"trending: {store[p.id].upvotes} upvotes on Hugging Face" for p in fill)
