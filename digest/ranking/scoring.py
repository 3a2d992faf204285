"""Scores for all subscribers at once: one dense product per chunk, sparse corrections, top-k.

For a chunk of c subscribers against m candidates the final score is

    S = (1 - w) * relevance + w * trending

    relevance = (1 - a) * (z . y - b * genericity * [z != 0])        dense profile (LSA)
              + a * (interest TF-IDF . paper TF-IDF)                   exact term matches
              + category_boost * [category match] + author_boost * [author match]

The dense part, its genericity correction and the whole trending blend are folded into ONE
float32 GEMM by appending two columns: A = [(1-a)(1-w) z, -(1-a)(1-w) b, w] and
B = [y, genericity, trending]. The sparse corrections are added in place, banned papers set
to -inf, and a threshold top-k keeps the best. Memory is bounded by the chunk (c x m floats).
There is no Python loop over subscribers or papers here; the only per-row loop is MMR, on the
rare rows whose short list holds near-duplicates, and explanations, built on demand per pick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from digest.ranking.context import RankContext
from digest.ranking.diversity import mmr, rows_needing_mmr
from digest.ranking.explain import explain
from digest.ranking.profiles import ProfileBatch
from digest.ranking.topk import top_k
from digest.ranking.types import Pick, RankParams


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def _row_scale(matrix: sparse.csr_matrix, factors: np.ndarray) -> sparse.csr_matrix:
    out = matrix.copy()
    out.data *= np.repeat(factors, np.diff(out.indptr)).astype(out.data.dtype)
    return out


@dataclass
class ChunkTerms:
    """Per-row quantities of one chunk, kept to score and to explain."""

    dense: np.ndarray  # (c, d) unit profile vectors (zero rows: no text profile)
    term_share: np.ndarray  # (c,) a
    weight: np.ndarray  # (c,) w
    sparse_relevance: sparse.csr_matrix  # (c, m) interest terms + category/author boosts


def chunk_terms(
    context: RankContext, batch: ProfileBatch, start: int, stop: int, params: RankParams
) -> ChunkTerms:
    likes = batch.likes[start:stop]
    interests = batch.interests[start:stop]
    has_interest = np.diff(interests.indptr) > 0
    n_likes = np.asarray((likes > 0).sum(axis=1)).ravel()
    has_likes = n_likes > 0
    # Likes: signed mean of liked minus disliked paper vectors; interest: its projection.
    z_likes = _normalise_rows(np.asarray(likes @ context.pool_vectors.dense, dtype=np.float32))
    # Next to stated interests, likes earn weight as they accumulate (n / (n + prior)): a
    # first day's few clicks refine the interest text instead of replacing it.
    trust = np.where(has_interest, n_likes / (n_likes + params.likes_prior), 1.0)
    z = _normalise_rows(z_likes * trust[:, None].astype(np.float32)
                        + context.model.project(interests))
    # Exact interest terms keep their share of the text score in the same proportion.
    term_share = params.interest_term_share * has_interest * (1.0 - trust / 2)
    extra = interests @ context.vectors.tfidf.T
    extra = _row_scale(extra.tocsr(), term_share.astype(np.float32))
    categories = batch.categories[start:stop] @ context.category_matrix
    authors = batch.authors[start:stop] @ context.author_matrix
    for boost, match in ((params.category_boost, categories), (params.author_boost, authors)):
        if match.nnz:
            match = match.tocsr()
            match.data[:] = boost  # any match counts once, however many categories agree
            extra = extra + match
    empty = ~(has_interest | has_likes | (np.diff(batch.categories[start:stop].indptr) > 0)
              | (np.diff(batch.authors[start:stop].indptr) > 0))
    weight = batch.trending_weight[start:stop].copy()
    weight[np.isnan(weight)] = params.trending_weight
    weight = np.clip(weight, 0.0, 1.0)
    weight[empty] = 1.0
    return ChunkTerms(z, term_share, weight, extra.tocsr().astype(np.float32))


def score_chunk(
    context: RankContext, terms: ChunkTerms, banned: sparse.csr_matrix, params: RankParams
) -> np.ndarray:
    """(c, m) float32 final scores; banned papers are -inf."""
    keep = (1.0 - terms.weight).astype(np.float32)
    dense_scale = (1.0 - terms.term_share).astype(np.float32) * keep
    has_dense = (np.abs(terms.dense).sum(axis=1) > 0).astype(np.float32)
    left = np.empty((len(keep), terms.dense.shape[1] + 2), dtype=np.float32)
    left[:, :-2] = terms.dense * dense_scale[:, None]
    left[:, -2] = -params.genericity_penalty * dense_scale * has_dense
    left[:, -1] = terms.weight
    right = _right_matrix(context)
    scores = left @ right.T
    extra = terms.sparse_relevance
    if extra.nnz:
        rows = np.repeat(np.arange(extra.shape[0]), np.diff(extra.indptr))
        scores[rows, extra.indices] += extra.data * keep[rows]
    if banned.nnz:
        rows = np.repeat(np.arange(banned.shape[0]), np.diff(banned.indptr))
        scores[rows, banned.indices] = -np.inf
    return scores


def _right_matrix(context: RankContext) -> np.ndarray:
    cached = getattr(context, "_right", None)
    if cached is None:
        v = context.vectors
        cached = np.ascontiguousarray(
            np.hstack([v.dense, v.genericity[:, None], context.trend[:, None]]), dtype=np.float32
        )
        context._right = cached  # type: ignore[attr-defined]  # built once per edition
    return cached


def relevance_of(
    context: RankContext, terms: ChunkTerms, columns: np.ndarray, params: RankParams
) -> np.ndarray:
    """Relevance of the chosen (row, column) pairs only, recomputed exactly."""
    safe = np.where(columns >= 0, columns, 0)
    y = context.vectors.dense[safe]  # (c, k, d)
    dense = np.einsum("cd,ckd->ck", terms.dense, y)
    has_dense = np.abs(terms.dense).sum(axis=1) > 0
    dense -= params.genericity_penalty * context.vectors.genericity[safe] * has_dense[:, None]
    rows = np.repeat(np.arange(columns.shape[0]), columns.shape[1])
    extra = np.asarray(terms.sparse_relevance[rows, safe.ravel()]).reshape(columns.shape)
    return (1.0 - terms.term_share)[:, None] * dense + extra


@dataclass
class RankResult:
    """Each subscriber's top N as arrays; `picks(i)` builds Pick objects (with reasons) lazily."""

    context: RankContext
    batch: ProfileBatch
    params: RankParams
    columns: np.ndarray  # (n, k) int32 candidate columns, -1 where fewer than k exist
    scores: np.ndarray  # (n, k) float32 final scores
    relevance: np.ndarray  # (n, k) float32
    weight: np.ndarray  # (n,) trending weight used

    def __len__(self) -> int:
        return len(self.columns)

    def ids(self, i: int) -> list[str]:
        return [self.context.candidates[j].id for j in self.columns[i] if j >= 0]

    def picks(self, i: int) -> list[Pick]:
        context, batch = self.context, self.batch
        likes = batch.likes[i]
        liked_rows = likes.indices[likes.data > 0]
        categories = {name for name, k in context.categories.items()
                      if k in set(batch.categories[i].indices)}
        authors = {name for name, k in context.authors.items()
                   if k in set(batch.authors[i].indices)}
        w = float(self.weight[i])
        picks = []
        for j, score, rel in zip(self.columns[i], self.scores[i], self.relevance[i], strict=True):
            if j < 0:
                continue
            trend = float(context.trend[j])
            why = explain(
                context,
                column=int(j),
                relevance_part=(1 - w) * float(rel),
                trending_part=w * trend,
                interest_terms=batch.interests[i],
                liked_rows=liked_rows,
                categories=categories,
                authors=authors,
            )
            picks.append(Pick(context.candidates[j].id, float(score), float(rel), trend, why))
        return picks


def rank_batch(
    context: RankContext, batch: ProfileBatch, *, top_n: int, params: RankParams
) -> RankResult:
    n, m = len(batch), context.size
    k = min(top_n, m)
    diversify = params.diversity > 0 and bool(context.has_duplicate.any())
    short = min(m, 2 * k if diversify else k)
    columns = np.full((n, k), -1, dtype=np.int32)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    relevance = np.zeros((n, k), dtype=np.float32)
    weight = np.zeros(n, dtype=np.float64)
    chunk = max(1, params.chunk_size)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        terms = chunk_terms(context, batch, start, stop, params)
        block = score_chunk(context, terms, batch.banned[start:stop], params)
        top = top_k(block, short)
        top_scores = np.take_along_axis(block, top, axis=1)
        top = np.where(np.isfinite(top_scores), top, -1)
        chosen = top[:, :k].copy()
        if diversify:
            for r in rows_needing_mmr(top, context.has_duplicate):
                picked = mmr(top[r], top_scores[r], context.duplicates,
                             strength=params.diversity, top_n=k)
                chosen[r] = -1
                chosen[r, : len(picked)] = picked
        chosen_scores = np.take_along_axis(block, np.where(chosen >= 0, chosen, 0), axis=1)
        columns[start:stop] = chosen
        scores[start:stop] = np.where(chosen >= 0, chosen_scores, -np.inf)
        relevance[start:stop] = np.where(
            chosen >= 0, relevance_of(context, terms, chosen, params), 0.0
        )
        weight[start:stop] = terms.weight
    return RankResult(context, batch, params, columns, scores, relevance, weight)


def all_picks(result: RankResult, rows: Sequence[int] | None = None) -> list[list[Pick]]:
    return [result.picks(i) for i in (range(len(result)) if rows is None else rows)]
