"""Diversity pass: maximal marginal relevance over a short list, against near-duplicates only.

Classic MMR picks, one at a time, the paper maximising score - lambda * max similarity to the
papers already picked. Here similarity counts only above a near-duplicate bar (TF-IDF cosine of
0.5 by default), so two papers on the same topic can both be picked, but two versions of the
same work cannot crowd the list. Because of that bar, rows whose short list holds at most one
paper with any near-copy are already final and skip the greedy pass entirely; the others run
it together (`mmr_rows`): top_n vectorised steps over a (rows, s, s) similarity block, so the
cost does not grow with a Python loop per subscriber. `mmr` is the one-row reference.
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
    duplicates: sparse.csr_matrix | np.ndarray,
    *,
    strength: float,
    top_n: int,
) -> np.ndarray:
    """Re-order one short list (best first, -1 padded) by MMR; returns up to top_n columns."""
    keep = columns >= 0
    columns, scores = columns[keep], scores[keep].astype(np.float64)
    if len(columns) == 0:
        return columns
    if isinstance(duplicates, np.ndarray):
        sim = duplicates[np.ix_(columns, columns)].astype(np.float64)
    else:
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


def similarity_block(
    shortlist: np.ndarray, duplicates: sparse.csr_matrix | np.ndarray
) -> np.ndarray:
    """(r, s, s) float64 near-duplicate similarities among each row's short list (-1: none)."""
    safe = np.where(shortlist >= 0, shortlist, 0)
    r, s = safe.shape
    left = np.repeat(safe, s, axis=1).ravel()
    right = np.tile(safe, (1, s)).ravel()
    sim: np.ndarray
    if isinstance(duplicates, np.ndarray):
        sim = duplicates[left, right]
    else:
        sim = np.asarray(duplicates[left, right]).ravel()
    return sim.reshape(r, s, s).astype(np.float64)


def mmr_rows(
    shortlist: np.ndarray,
    scores: np.ndarray,
    duplicates: sparse.csr_matrix | np.ndarray,
    *,
    strength: float,
    top_n: int,
) -> np.ndarray:
    """`mmr` for many rows at once: (r, s) short lists (best first, -1 padded) -> (r, top_n)
    columns, -1 padded. Same greedy choices (ties: first in the short list) as `mmr`."""
    r, s = shortlist.shape
    chosen = np.full((r, top_n), -1, dtype=shortlist.dtype)
    if r == 0 or s == 0:
        return chosen
    sim = similarity_block(shortlist, duplicates)
    available = shortlist >= 0
    base = np.where(available, scores.astype(np.float64), -np.inf)
    penalty = np.zeros((r, s))
    every = np.arange(r)
    for step in range(min(top_n, s)):
        value = np.where(available, base - strength * penalty, -np.inf)
        best = value.argmax(axis=1)
        live = available[every, best]  # rows that still had a paper to give
        chosen[live, step] = shortlist[every[live], best[live]]
        available[every, best] = False
        penalty = np.maximum(penalty, sim[every, best])
    return chosen
