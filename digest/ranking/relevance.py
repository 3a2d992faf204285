"""Raw relevance of a block's rows: the dense profile product with its genericity correction,
exact interest terms and the category/author boosts; for the whole block or for chosen papers.

The dense part and its genericity correction are ONE float32 GEMM: the profile rows get an
extra column (-penalty), the papers their genericity.
"""

from __future__ import annotations

import numpy as np

from digest.ranking.chunks import ChunkTerms
from digest.ranking.context import RankContext
from digest.ranking.types import RankParams


def relevance_block(context: RankContext, terms: ChunkTerms, params: RankParams) -> np.ndarray:
    """(c, m) float32 raw relevance: the dense profile, its genericity correction, exact
    interest terms and the category/author boosts."""
    dense_scale = (1.0 - terms.term_share).astype(np.float32)
    has_dense = (np.abs(terms.dense).sum(axis=1) > 0).astype(np.float32)
    left = np.empty((len(dense_scale), terms.dense.shape[1] + 1), dtype=np.float32)
    left[:, :-1] = terms.dense * dense_scale[:, None]
    left[:, -1] = -params.genericity_penalty * dense_scale * has_dense
    right = right_matrix(context)
    relevance: np.ndarray = left @ right.T
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


def right_matrix(context: RankContext) -> np.ndarray:
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
    if terms.followed_relevance is not None and terms.followed_relevance.nnz:
        lifted = terms.followed_relevance[rows, safe.ravel()]
        extra = extra + np.asarray(lifted).reshape(columns.shape)
    if len(terms.category_rows):
        extra[terms.category_rows] += np.take_along_axis(
            terms.category_boost, safe[terms.category_rows], axis=1
        )
    chosen: np.ndarray = (1.0 - terms.term_share)[:, None] * dense + extra
    return chosen
