"""Rank an edition's candidate papers for every subscriber at once. Pure: no DB, no I/O, no clock.

Modules, one job each:
    types      Candidate, Profile, Pick, RankParams (plain frozen values)
    vectors    TextModel: TF-IDF + LSA projection fitted once per edition
    trending   per-paper community signal, once per edition
    context    the edition's candidate/pool vectors and incidences, built once
    profiles   ProfileBatch: all subscribers' profiles as sparse matrices
    scoring    all subscribers at once, block by block on threads: top-k, MMR, RankResult
    chunks     what a block of rows brings: profile vectors, term share, weights, boosts
    relevance  a block's raw relevance (one GEMM + sparse corrections), or chosen papers'
    calibration  each row's relevance on its own scale, trending blended, followed lifted
    topk       threshold top-k; diversity: MMR against near-duplicates; explain: reasons
    semantic   the embedding backend (encoder, embeddings, reduction: its parts)
    compose    minimum relevance + labelled trending fill, for emails

Public API (used by editions.py, `digest rank` and the web app alike):
    rank(candidates, profiles, *, top_n, pool, params, model, now) -> list[list[Pick]]
    compose_digest(candidates, profiles, *, top_n, min_relevance, ...) -> list[list[Pick]]
    rank_result(...) -> RankResult   arrays for large editions; picks built per subscriber
    trending_scores(candidates, *, now, half_life_days) -> ndarray
    TextModel.fit(texts) / fit_for(candidates, window) / paper_text(paper)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from digest.ranking.compose import compose_row
from digest.ranking.context import RankContext, build_context
from digest.ranking.profiles import ProfileBatch, build_batch
from digest.ranking.scoring import RankResult, all_picks, rank_batch
from digest.ranking.trending import trending_scores
from digest.ranking.types import Candidate, Pick, Profile, RankParams
from digest.ranking.vectors import TextBackend, TextModel, fit_for, paper_text

__all__ = [
    "Candidate",
    "Pick",
    "Profile",
    "ProfileBatch",
    "RankContext",
    "RankParams",
    "RankResult",
    "TextModel",
    "build_batch",
    "build_context",
    "compose_digest",
    "fit_for",
    "paper_text",
    "rank",
    "rank_result",
    "trending_scores",
]


def rank_result(
    candidates: Sequence[Candidate],
    profiles: Sequence[Profile],
    *,
    top_n: int = 10,
    pool: Sequence[Candidate] = (),
    params: RankParams = RankParams(),
    model: TextBackend | None = None,
    now: datetime | None = None,
    context: RankContext | None = None,
) -> RankResult:
    """Rank every profile; returns arrays (build `Pick`s per subscriber with `.picks(i)`).

    Pass `context` (from `build_context`) to reuse one edition's vectors across batches.
    """
    if context is None:
        context = build_context(candidates, pool=pool, model=model, now=now, params=params)
    batch = build_batch(profiles, context, params)
    return rank_batch(context, batch, top_n=top_n, params=params)


def rank(
    candidates: Sequence[Candidate],
    profiles: Sequence[Profile],
    *,
    top_n: int = 10,
    pool: Sequence[Candidate] = (),
    params: RankParams = RankParams(),
    model: TextBackend | None = None,
    now: datetime | None = None,
) -> list[list[Pick]]:
    """Each profile's top N candidates by blended relevance and trending, best first.

    Liked, disliked, excluded and muted papers are never returned. An empty profile gets the
    pure trending order. Without `model`, a TextModel is fitted on candidates + pool.
    """
    if not candidates:
        return [[] for _ in profiles]
    result = rank_result(
        candidates, profiles, top_n=top_n, pool=pool, params=params, model=model, now=now
    )
    return all_picks(result)


def compose_digest(
    candidates: Sequence[Candidate],
    profiles: Sequence[Profile],
    *,
    top_n: int = 10,
    min_relevance: float = 0.25,
    pool: Sequence[Candidate] = (),
    params: RankParams = RankParams(),
    model: TextBackend | None = None,
    now: datetime | None = None,
) -> list[list[Pick]]:
    """Digest contents per profile: matches (kind="match"), then trending fill (kind="trending")."""
    if not candidates:
        return [[] for _ in profiles]
    result = rank_result(
        candidates, profiles, top_n=top_n, pool=pool, params=params, model=model, now=now
    )
    return [
        compose_row(result, i, top_n=top_n, min_relevance=min_relevance) for i in range(len(result))
    ]
