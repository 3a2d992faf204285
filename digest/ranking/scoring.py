"""Scores for all subscribers at once: one dense product per chunk, sparse corrections, top-k.

For a block of c subscribers against m candidates the final score is

    S = (1 - w) * relevance + w * trending

    relevance = (1 - a) * (z . y - b * genericity * [z != 0])        dense profile (LSA)
              + a * (interest TF-IDF . paper TF-IDF)                   exact term matches
              + category_boost * [category match]

and papers by a followed author are then lifted above the row's every other paper (see
digest.ranking.calibration), on the calibrated scale: a followed author's new paper is always first.

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

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from digest.ranking.calibration import score_chunk
from digest.ranking.chunks import category_dense, chunk_terms
from digest.ranking.context import RankContext
from digest.ranking.diversity import mmr_rows, rows_needing_mmr
from digest.ranking.explain import explain_rows
from digest.ranking.profiles import ProfileBatch
from digest.ranking.relevance import relevance_of, right_matrix
from digest.ranking.topk import top_k
from digest.ranking.types import Pick, RankParams


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


def _rank_rows(
    context: RankContext,
    batch: ProfileBatch,
    start: int,
    stop: int,
    k: int,
    short: int,
    diversify: bool,
    duplicates: np.ndarray | sparse.csr_matrix,
    params: RankParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    right_matrix(context)
    category_dense(context)
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
def _one_blas_thread(threads: int) -> Iterator[None]:
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
