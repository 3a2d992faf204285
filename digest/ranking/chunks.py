"""What one block (chunk) of subscriber rows brings to scoring, computed once per block.

Each row's dense profile (likes and interest text), the share of exact interest terms, the
trending weight and the sparse boosts (interest terms, categories, followed authors) are kept
in `ChunkTerms`: digest.ranking.calibration scores them, digest.ranking.relevance re-reads them
for the chosen papers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from digest.ranking.context import RankContext
from digest.ranking.profiles import ProfileBatch
from digest.ranking.types import RankParams
from digest.ranking.vectors import normalise_rows


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
    followed: sparse.csr_matrix  # (c, m) 1 where a followed author wrote the paper
    # Set by score_chunk: the raw relevance that lifted each followed paper to the top.
    followed_relevance: sparse.csr_matrix | None = None


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
    z_likes = normalise_rows(np.asarray(likes @ context.pool_vectors.dense, dtype=np.float32))
    # Next to stated interests, likes earn weight as they accumulate (n / (n + prior)): a
    # first day's few clicks refine the interest text instead of replacing it.
    trust = np.where(has_interest, n_likes / (n_likes + params.likes_prior), 1.0)
    z = normalise_rows(
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
    category_rows, category_boost, category_match = _category_terms(
        context, categories, has_categories, has_text, params
    )
    followed = (batch.authors[start:stop] @ context.author_matrix).tocsr()
    followed.sum_duplicates()
    followed.data[:] = 1.0
    if category_match is not None:
        extra = extra + category_match
    empty = ~(has_text | has_categories | has_authors)
    weight = batch.trending_weight[start:stop].copy()
    weight[np.isnan(weight)] = params.trending_weight
    weight = np.clip(weight, 0.0, 1.0)
    weight[empty] = 1.0
    return ChunkTerms(
        z,
        term_share,
        weight,
        extra.tocsr().astype(np.float32),
        category_rows,
        category_boost,
        followed.astype(np.float32),
    )


def _category_terms(
    context: RankContext,
    categories: sparse.csr_matrix,
    has_categories: np.ndarray,
    has_text: np.ndarray,
    params: RankParams,
) -> tuple[np.ndarray, np.ndarray, sparse.csr_matrix | None]:
    """Category boosts of a block: the rows that get them as a small dense product and those
    (s, m) boosts, or, with too many categories for a dense product, a sparse (c, m) matrix
    to add to the other sparse terms (None when nothing matches).

    Without a text profile a match IS the relevance (1.0), so a categories-only digest is
    on-topic first; next to a text profile it is a boost. Any match counts once.
    """
    category_rows = np.zeros(0, dtype=np.int64)
    category_boost = np.zeros((0, context.size), dtype=np.float32)
    dense_categories = category_dense(context)
    if dense_categories is None:  # the sparse path
        match = categories @ context.category_matrix
        if not match.nnz:
            return category_rows, category_boost, None
        match = match.tocsr()
        row_boost = np.where(has_text, params.category_boost, 1.0).astype(np.float32)
        match.data[:] = np.repeat(row_boost, np.diff(match.indptr))
        return category_rows, category_boost, match
    category_rows = np.flatnonzero(has_categories)
    if len(category_rows):
        follows = categories[category_rows].toarray()
        category_boost = follows @ dense_categories  # (s, m): how many followed ones match
        np.minimum(category_boost, 1.0, out=category_boost)
        category_boost *= np.where(has_text[category_rows], params.category_boost, 1.0).astype(
            np.float32
        )[:, None]
    return category_rows, category_boost, None


def category_dense(context: RankContext) -> np.ndarray | None:
    """(categories, m) 0/1 float32, once per edition; None when that would exceed 16 MB."""
    if "_category_dense" not in context.__dict__:
        c, m = context.category_matrix.shape
        context.__dict__["_category_dense"] = (
            context.category_matrix.toarray().astype(np.float32) if c * m <= 4_000_000 else None
        )
    cached: np.ndarray | None = context.__dict__["_category_dense"]
    return cached
