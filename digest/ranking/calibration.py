"""A block's final scores: each row's relevance on its own scale, trending blended in, papers
by followed authors lifted above the rest, banned papers at -inf.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from digest.ranking.chunks import ChunkTerms
from digest.ranking.context import RankContext
from digest.ranking.relevance import relevance_block
from digest.ranking.types import RankParams


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
    relevance = relevance_block(context, terms, params)
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
    _lead_followed(scores, terms, scale, params)
    return scores, scale


def _lead_followed(
    scores: np.ndarray, terms: ChunkTerms, scale: np.ndarray, params: RankParams
) -> None:
    """Lift each row's followed-author papers above all its other papers, in place.

    A fixed boost cannot promise that: relevance is divided by the row's reference, so a boost
    that wins for one profile loses for another. The lift is per row: the gap between the
    row's best score and its lowest followed paper, plus `author_lead` calibrated units. The
    reference (scale) is taken before the lift, so following a prolific author does not push
    the subscriber's other matches under the match threshold. The same lift, in raw relevance
    units, is kept in `terms.followed_relevance` so that the picks' relevance agrees.
    """
    followed = terms.followed
    c, m = scores.shape
    if not followed.nnz:
        terms.followed_relevance = followed
        return
    rows = np.repeat(np.arange(c), np.diff(followed.indptr))
    positions = rows * m + followed.indices
    flat = scores.reshape(-1)
    values = flat[positions]
    finite = np.isfinite(values)
    low = np.full(c, np.inf, dtype=np.float32)
    np.minimum.at(low, rows[finite], values[finite])
    best = np.full(c, -np.inf, dtype=np.float32)
    following = np.unique(rows)  # only these rows' maxima are needed
    best[following] = scores[following].max(axis=1)
    keep = np.maximum(1.0 - terms.weight, 1e-3).astype(np.float32)
    gap = np.where(np.isfinite(low) & np.isfinite(best), best - low, 0.0)
    lift = (np.maximum(gap, 0.0) + keep * params.author_lead).astype(np.float32)
    flat[positions] += lift[rows]  # -inf (banned) stays -inf
    lifted = followed.copy()
    lifted.data = (lift / (keep * scale))[rows].astype(np.float32)
    terms.followed_relevance = lifted


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
