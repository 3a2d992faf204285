"""Scores for all subscribers at once: one dense product per chunk, sparse corrections, top-k.

For a block of c subscribers against m candidates the final score is

    S = (1 - w) * relevance + w * trending

    relevance = (1 - a) * (z . y - b * genericity * [z != 0])        dense profile (LSA)
              + a * (interest TF-IDF . paper TF-IDF)                   exact term matches
              + category_boost * [category match] + author_boost * [author match]

The dense part, its genericity correction and the whole trending blend are folded into ONE
float32 GEMM by appending two columns: A = [(1-a)(1-w) z, -(1-a)(1-w) b, w] and
B = [y, genericity, trending]. The sparse corrections are added in place (category boosts as
a small dense product for the rows that follow categories), banned papers set to -inf, and a
threshold top-k keeps the best. Blocks of 1,024 rows run on worker threads, each doing all of
the above; memory is bounded by threads x block x m floats.
There is no Python loop over subscribers or papers here: MMR runs vectorised over the rows whose
short list holds near-duplicates, and reasons are built on demand for blocks of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from digest.ranking.context import RankContext
from digest.ranking.diversity import mmr_rows, rows_needing_mmr
from digest.ranking.explain import explain_rows
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
    """Per-row quantities of one block of rows, kept to score and to explain."""

    dense: np.ndarray  # (c, d) unit profile vectors (zero rows: no text profile)
    term_share: np.ndarray  # (c,) a
    weight: np.ndarray  # (c,) w
    sparse_relevance: sparse.csr_matrix  # (c, m) interest terms + author (+ category) boosts
    # Category boosts as a small dense product, for the rows that follow categories:
    category_rows: np.ndarray  # (s,) row numbers within the block
    category_boost: np.ndarray  # (s, m) boost * [any followed category matches], or (0, m)


def chunk_terms(
    context: RankContext, batch: ProfileBatch, start: int, stop: int, params: RankParams
) -> ChunkTerms:
    likes = batch.likes[start:stop]
    interests = batch.interests[start:stop]
    has_interest = np.diff(interests.indptr) > 0
    positive = np.concatenate(([0], np.cumsum(likes.data > 0)))  # liked, not disliked
    n_likes = positive[likes.indptr[1:]] - positive[likes.indptr[:-1]]
    has_likes = n_likes > 0
    # Likes: signed mean of liked minus disliked paper vectors; interest: its projection.
    z_likes = _normalise_rows(np.asarray(likes @ context.pool_vectors.dense, dtype=np.float32))
    # Next to stated interests, likes earn weight as they accumulate (n / (n + prior)): a
    # first day's few clicks refine the interest text instead of replacing it.
    trust = np.where(has_interest, n_likes / (n_likes + params.likes_prior), 1.0)
    z = _normalise_rows(
        z_likes * trust[:, None].astype(np.float32) + context.model.project(interests)
    )
    # Exact interest terms keep their share of the text score in the same proportion.
    term_share = params.interest_term_share * has_interest * (1.0 - trust / 2)
    if interests.nnz:
        extra = _row_scale(
            (interests @ context.tfidf_by_term).tocsr(), term_share.astype(np.float32)
        )
    else:
        extra = sparse.csr_matrix((stop - start, context.size), dtype=np.float32)
    categories = batch.categories[start:stop]
    has_categories = np.diff(categories.indptr) > 0
    has_authors = np.diff(batch.authors[start:stop].indptr) > 0
    has_text = has_interest | has_likes
    # Without a text profile a match IS the relevance (1.0), so a categories-only digest is
    # on-topic first; next to a text profile it is a boost. Any match counts once.
    dense_categories = _category_dense(context)
    category_rows = (
        np.flatnonzero(has_categories)
        if dense_categories is not None
        else np.zeros(0, dtype=np.int64)
    )
    category_boost = np.zeros((0, context.size), dtype=np.float32)
    if len(category_rows):
        follows = categories[category_rows].toarray()
        category_boost = follows @ dense_categories  # (s, m): how many followed ones match
        np.minimum(category_boost, 1.0, out=category_boost)
        category_boost *= np.where(has_text[category_rows], params.category_boost, 1.0).astype(
            np.float32
        )[:, None]
    matches = [(params.author_boost, batch.authors[start:stop] @ context.author_matrix)]
    if dense_categories is None:  # too many categories for a dense product: sparse path
        matches.append((params.category_boost, categories @ context.category_matrix))
    for boost, match in matches:
        if match.nnz:
            match = match.tocsr()
            row_boost = np.where(has_text, boost, 1.0).astype(np.float32)
            match.data[:] = np.repeat(row_boost, np.diff(match.indptr))
            extra = extra + match
    empty = ~(has_text | has_categories | has_authors)
    weight = batch.trending_weight[start:stop].copy()
    weight[np.isnan(weight)] = params.trending_weight
    weight = np.clip(weight, 0.0, 1.0)
    weight[empty] = 1.0
    return ChunkTerms(
        z, term_share, weight, extra.tocsr().astype(np.float32), category_rows, category_boost
    )


def _category_dense(context: RankContext) -> np.ndarray | None:
    """(categories, m) 0/1 float32, once per edition; None when that would exceed 16 MB."""
    cached = context.__dict__.get("_category_dense", False)
    if cached is False:
        c, m = context.category_matrix.shape
        cached = (
            context.category_matrix.toarray().astype(np.float32) if c * m <= 4_000_000 else None
        )
        context.__dict__["_category_dense"] = cached
    return cached


def score_chunk(
    context: RankContext, terms: ChunkTerms, banned: sparse.csr_matrix, params: RankParams
) -> tuple[np.ndarray, np.ndarray]:
    """(c, m) float32 final scores (banned papers -inf) and (c,) each row's relevance scale.

    Relevance and trending live on different scales: a subscriber's relevance is a cosine-like
    number whose size depends on the profile (a long library, a short phrase, categories
    only), trending is in [0, 1]. Each row's relevance is therefore divided by its own
    reference, the CALIBRATION_RANK-th best relevance among the row's candidates (never below
    params.relevance_floor, so a day with nothing near the profile does not blow noise up to
    "1.0"): the subscriber's few best papers sit near 1 whatever the profile, and trending, at
    most the trending weight, lifts papers among the relevant ones instead of replacing them.
    Within a row the scaling is monotone, so with no trending signal the order is unchanged.
    """
    relevance = _relevance_block(context, terms, params)
    m = relevance.shape[1]
    flat = relevance.reshape(-1)
    positions = np.zeros(0, dtype=np.int64)
    if banned.nnz:
        rows = np.repeat(np.arange(banned.shape[0]), np.diff(banned.indptr))
        positions = rows * m + banned.indices
        flat[positions] = -np.inf  # never a row's reference
    scale = _relevance_scale(relevance, params)
    flat[positions] = 0.0  # (-inf * a zero weight would be NaN)
    keep = (1.0 - terms.weight).astype(np.float32)
    scores = relevance
    scores *= (keep * scale)[:, None]
    scores += terms.weight.astype(np.float32)[:, None] * context.trend.astype(np.float32)[None, :]
    flat[positions] = -np.inf
    return scores, scale


# The relevance of a row's 3rd best candidate is its reference: one near-copy of a liked paper
# does not set the scale for the rest.
CALIBRATION_RANK = 3


def _relevance_scale(relevance: np.ndarray, params: RankParams) -> np.ndarray:
    """(c,) float32: 1 / max(the row's CALIBRATION_RANK-th best relevance, floor).

    Found by taking out each row's best value CALIBRATION_RANK - 1 times (argmax passes, then
    put back): ~10x cheaper than np.partition over the whole block, which cost a third of
    the ranking time."""
    c, m = relevance.shape
    if m == 0:
        return np.ones(c, dtype=np.float32)
    rows = np.arange(c)
    taken: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(min(CALIBRATION_RANK, m) - 1):
        best = relevance.argmax(axis=1)
        taken.append((best, relevance[rows, best].copy()))
        relevance[rows, best] = -np.inf
    kth = relevance.max(axis=1)
    for best, values in reversed(taken):
        relevance[rows, best] = values
    kth = np.where(np.isfinite(kth), kth, 0.0)
    return (1.0 / np.maximum(kth, params.relevance_floor)).astype(np.float32)


def _relevance_block(context: RankContext, terms: ChunkTerms, params: RankParams) -> np.ndarray:
    """(c, m) float32 raw relevance: the dense profile, its genericity correction, exact
    interest terms and the category/author boosts."""
    dense_scale = (1.0 - terms.term_share).astype(np.float32)
    has_dense = (np.abs(terms.dense).sum(axis=1) > 0).astype(np.float32)
    left = np.empty((len(dense_scale), terms.dense.shape[1] + 1), dtype=np.float32)
    left[:, :-1] = terms.dense * dense_scale[:, None]
    left[:, -1] = -params.genericity_penalty * dense_scale * has_dense
    right = _right_matrix(context)
    relevance = left @ right.T
    m = relevance.shape[1]
    flat = relevance.reshape(-1)  # flat positions: 1-D fancy indexing is ~5x cheaper than 2-D
    extra = terms.sparse_relevance
    if extra.nnz:
        rows = np.repeat(np.arange(extra.shape[0]), np.diff(extra.indptr))
        # canonical CSR has no repeated (row, col), so += on fancy indices is exact
        flat[rows * m + extra.indices] += extra.data
    if len(terms.category_rows):
        relevance[terms.category_rows] += terms.category_boost
    return relevance


def _right_matrix(context: RankContext) -> np.ndarray:
    cached = getattr(context, "_right", None)
    if cached is None:
        v = context.vectors
        cached = np.ascontiguousarray(np.hstack([v.dense, v.genericity[:, None]]), dtype=np.float32)
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
    if len(terms.category_rows):
        extra[terms.category_rows] += np.take_along_axis(
            terms.category_boost, safe[terms.category_rows], axis=1
        )
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
    scale: np.ndarray  # (n,) each row's relevance scale (see score_chunk): calibrated = r * scale
    _picks: dict[int, list[list[Pick]]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.columns)

    def ids(self, i: int) -> list[str]:
        return [self.context.candidates[j].id for j in self.columns[i] if j >= 0]

    def picks(self, i: int) -> list[Pick]:
        """Row i's picks with reasons. Reasons are built for PICK_BLOCK rows at a time (one
        vectorised pass), and the block is kept: walking the rows in order, as an email batch
        does, costs one pass per block rather than per subscriber."""
        start = i - i % PICK_BLOCK
        block = self._picks.get(start)
        if block is None:
            block = self.picks_for(range(start, min(len(self), start + PICK_BLOCK)))
            self._picks.clear()  # one block held: memory stays bounded for a 1M-row result
            self._picks[start] = block
        return block[i - start]

    def picks_for(self, rows: Sequence[int]) -> list[list[Pick]]:
        """Picks with reasons for these rows, in one vectorised pass."""
        return explain_rows(
            self.context,
            self.batch,
            rows,
            self.columns,
            self.scores,
            self.relevance,
            self.weight,
            self.scale,
        )


PICK_BLOCK = 256
BLOCK = 1024  # rows scored at a time: the (block, m) score array stays small (8 MB)


def _rank_rows(context, batch, start, stop, k, short, diversify, duplicates, params):
    """Everything for rows [start, stop): profile terms, scores, exclusions, top-k, MMR.

    One call per block, run on worker threads: the sparse products of `chunk_terms`, the
    GEMM and the top-k passes all release the GIL, so the blocks use every core."""
    terms = chunk_terms(context, batch, start, stop, params)
    block, scale = score_chunk(context, terms, batch.banned[start:stop], params)
    top = top_k(block, short)
    top_scores = np.take_along_axis(block, top, axis=1)
    top = np.where(np.isfinite(top_scores), top, -1)
    chosen = top[:, :k].copy()
    if diversify:
        redo = rows_needing_mmr(top, context.has_duplicate)
        if len(redo):
            # MMR's penalty is on the scale where a row's best papers score about 1.
            unit = (1.0 - terms.weight) * scale + terms.weight
            chosen[redo] = mmr_rows(
                top[redo],
                top_scores[redo] / unit[redo, None].astype(np.float32),
                duplicates,
                strength=params.diversity,
                top_n=k,
            )
    chosen_scores = np.take_along_axis(block, np.where(chosen >= 0, chosen, 0), axis=1)
    scores = np.where(chosen >= 0, chosen_scores, -np.inf)
    relevance = np.where(chosen >= 0, relevance_of(context, terms, chosen, params), 0.0)
    return chosen, scores, relevance, terms.weight, scale


def rank_batch(
    context: RankContext,
    batch: ProfileBatch,
    *,
    top_n: int,
    params: RankParams,
    threads: int = 2,
) -> RankResult:
    n, m = len(batch), context.size
    k = min(top_n, m)
    diversify = params.diversity > 0 and bool(context.has_duplicate.any())
    short = min(m, 2 * k if diversify else k)
    columns = np.full((n, k), -1, dtype=np.int32)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    relevance = np.zeros((n, k), dtype=np.float32)
    weight = np.zeros(n, dtype=np.float64)
    scale = np.ones(n, dtype=np.float32)
    block = max(1, min(params.chunk_size, BLOCK))
    # Dense (m, m) copy for fast lookups in MMR: 16 MB for 2,000 candidates; sparse beyond.
    duplicates = (
        context.duplicates.toarray().astype(np.float32)
        if diversify and m <= 4000
        else context.duplicates
    )
    # Per-edition arrays, built once before the threads share them.
    _right_matrix(context)
    _category_dense(context)
    _ = context.tfidf_by_term
    # BLAS is limited to one thread meanwhile so that the two levels do not fight over cores.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool, _one_blas_thread(threads):
        starts = range(0, n, block)
        results = pool.map(
            lambda s: _rank_rows(
                context, batch, s, min(n, s + block), k, short, diversify, duplicates, params
            ),
            starts,
        )
        for s, (c, sc, r, w, f) in zip(starts, results, strict=True):
            part = slice(s, min(n, s + block))
            columns[part], scores[part], relevance[part], weight[part] = c, sc, r, w
            scale[part] = f
    return RankResult(context, batch, params, columns, scores, relevance, weight, scale)


@contextmanager
def _one_blas_thread(threads: int):
    if threads <= 1:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn depends on it, but do not insist
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def all_picks(result: RankResult, rows: Sequence[int] | None = None) -> list[list[Pick]]:
    rows = range(len(result)) if rows is None else rows
    out: list[list[Pick]] = []
    for start in range(0, len(rows), PICK_BLOCK):  # blocks bound the temporary arrays
        out.extend(result.picks_for(rows[start : start + PICK_BLOCK]))
    return out
