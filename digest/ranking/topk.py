"""Row-wise top-k of a dense score block, best first, ties broken by the lower column index.

`np.argpartition` costs ~11 ns per score; a threshold pass costs a fraction of that: take a
strided sample of columns, use its j-th largest score as a per-row bar set so that about 2k
scores pass, keep the survivors and sort only those. Ties at the bar (many equal trending
scores) are resolved exactly without a sort; rows where the bar let through fewer than k
scores, or still far too many, are redone exactly, so the result always equals a full stable
sort.
"""

from __future__ import annotations

import numpy as np

SAMPLE = 128  # sampled columns per row for the bar
CAP_FACTOR = 8  # rows with more than CAP_FACTOR * k survivors are redone exactly


def top_k_exact(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) column indices by a full stable sort; the reference for `top_k`."""
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, min(k, m)) column indices of the k largest scores of each row, best first."""
    n, m = scores.shape
    k = min(k, m)
    if k == 0 or n == 0:
        return np.zeros((n, k), dtype=np.int64)
    if m <= SAMPLE or m < 8 * k:  # small blocks: sorting is already cheap
        return _exact_rows(scores, k)
    step = max(m // SAMPLE, 1)
    sample = scores[:, ::step]
    s = sample.shape[1]
    # The j-th largest of the sample lets ~2k of the m scores through; where that was too
    # few (skewed rows: ~5 % of liked-paper profiles), a bar 3x lower is tried before the
    # exact fallback.
    j = int(min(s, max(1, np.ceil(2 * k * s / m))))
    bar = np.partition(sample, s - j, axis=1)[:, s - j]
    mask = scores >= bar[:, None]
    counts = np.count_nonzero(mask, axis=1)
    few = np.flatnonzero(counts < k)
    if len(few):
        lower = s - min(s, 3 * j)
        bar[few] = np.partition(sample[few], lower, axis=1)[:, lower]
        mask[few] = scores[few] >= bar[few, None]
        counts[few] = np.count_nonzero(mask[few], axis=1)
    cap = CAP_FACTOR * k
    over = counts > cap
    if over.any():
        # Usually ties at the bar (equal trending scores, -inf rows): keep what is strictly
        # above it and, when that is fewer than k, the bar IS the k-th largest value, so the
        # lowest-index columns equal to it complete the top k exactly as a stable sort would.
        sub, level = scores[over], bar[over, None]
        strict = sub > level
        above = np.count_nonzero(strict, axis=1)
        equal = sub == level
        fill = equal & (np.cumsum(equal, axis=1) <= (k - above)[:, None])
        chosen = np.where((above < k)[:, None], strict | fill, strict)
        mask[over] = chosen
        counts[over] = np.count_nonzero(chosen, axis=1)
    good = (counts >= k) & (counts <= cap)
    result = np.empty((n, k), dtype=np.int64)
    if good.any():
        # Survivors of every row in one pass (row-major, so grouped by row, columns ascending).
        flat = np.flatnonzero(mask)
        rows = flat // m
        keep = good[rows]
        flat, rows = flat[keep], rows[keep]
        cols = flat - rows * m
        result[good] = _best_survivors(scores.ravel()[flat], rows, cols, good, counts, k)
    if not good.all():
        result[~good] = _exact_rows(scores[~good], k)
    return result


def _descending_bits(values: np.ndarray) -> np.ndarray:
    """uint64 keys of float32 values that sort in DEScending order of the values."""
    # + 0.0 turns -0.0 into 0.0: equal floats must get equal keys (ties go by column).
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0.0)).view(np.uint32)
    ascending = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))
    return (~ascending).astype(np.uint64)


def _best_survivors(
    values: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    good: np.ndarray,
    counts: np.ndarray,
    k: int,
) -> np.ndarray:
    """(good rows, k) columns: each good row's survivors sorted by score (ties: lower column).

    Row, score and column are packed into one uint64 and sorted once (a 1-D integer sort is
    several times faster than a stable argsort of a padded (rows, width) float array)."""
    slot = np.cumsum(good) - 1  # row -> its place among the good rows
    rows = slot[rows]
    row_bits = max(int(len(counts)).bit_length(), 1)
    col_bits = max(int(cols.max(initial=0)).bit_length(), 1)
    starts = np.concatenate(([0], np.cumsum(counts[good])[:-1]))
    if row_bits + 32 + col_bits <= 64 and values.dtype == np.float32:
        keys = (
            (rows.astype(np.uint64) << np.uint64(32 + col_bits))
            | (_descending_bits(values) << np.uint64(col_bits))
            | cols.astype(np.uint64)
        )
        keys.sort()
        firsts = keys[(starts[:, None] + np.arange(k)).ravel()]
        return (firsts & np.uint64((1 << col_bits) - 1)).astype(np.int64).reshape(-1, k)
    width = int(counts[good].max())
    pos = np.arange(len(rows)) - starts[rows]
    vals = np.full((len(starts), width), -np.inf, dtype=np.float32)
    idx = np.zeros((len(starts), width), dtype=np.int64)
    vals[rows, pos] = values
    idx[rows, pos] = cols
    # nonzero lists columns in ascending order, so a stable sort keeps lower index first.
    order = np.argsort(-vals, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(idx, order, axis=1)


def _exact_rows(scores: np.ndarray, k: int) -> np.ndarray:
    return top_k_exact(scores, k)
