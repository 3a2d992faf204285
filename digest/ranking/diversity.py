"""Diversity pass: maximal marginal relevance over a short list, against near-duplicates only.

Classic MMR picks, one at a time, the paper maximising score - lambda * max similarity to the
papers already picked. Here similarity counts only above a near-duplicate bar (TF-IDF cosine of
0.5 by default), so two papers on the same topic can both be picked, but two versions of the
same work cannot crowd the list. Because of that bar, rows whose short list holds at most one
paper with any near-copy are already final and skip the (per-row) greedy loop entirely.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def rows_needing_mmr(shortlist: np.ndarray, has_duplicate: np.ndarray) -> np.ndarray:
    """Row numbers whose short list has two or more papers that have near-copies."""
    valid = shortlist >= 0
    flagged = has_duplicate[np.where(valid, shortlist, 0)] & valid
    return np.nonzero(flagged.sum(axis=1) >= 2)[0]


def mmr(
    columns: np.ndarray,
    scores: np.ndarray,
    duplicates: sparse.csr_matrix,
    *,
    strength: float,
    top_n: int,
) -> np.ndarray:
    """Re-order one short list (best first, -1 padded) by MMR; returns up to top_n columns."""
    keep = columns >= 0
    columns, scores = columns[keep], scores[keep].astype(np.float64)
    if len(columns) == 0:
        return columns
    sim = duplicates[columns][:, columns].toarray()
    chosen: list[int] = []
    penalty = np.zeros(len(columns))
    available = np.ones(len(columns), dtype=bool)
    while len(chosen) < min(top_n, len(columns)):
        value = np.where(available, scores - strength * penalty, -np.inf)
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        penalty = np.maximum(penalty, sim[best])
    return columns[chosen]
