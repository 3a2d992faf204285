"""The edition's reduction of the joined LSA + embedding rows to a few principal axes.

Why: the joined rows are 256 + 384 numbers; scoring a million subscribers against them is 5x
the work of 128. Projected on their first 128 principal axes, with the dominant axes damped (a
few "this is a biology / ML abstract" directions otherwise decide most cosines), they rank real
researchers' libraries as well or better (CiteULike Recall@10 0.202 vs 0.200 for the full
joined rows; see docs/benchmarks.md) and no genericity correction is needed: the projection is
centred.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digest.ranking.vectors import normalise_rows

# The joined LSA + embedding rows are reduced to this many principal axes per edition, each
# scaled by singular value ** REDUCE_POWER; fewer papers than MIN_PAPERS_TO_REDUCE: no reduction.
REDUCED_DIMS = 128
REDUCE_POWER = 0.5
MIN_PAPERS_TO_REDUCE = 200


@dataclass(frozen=True, slots=True)
class Reduction:
    """Principal axes of an edition's joined paper rows, each scaled by the square root of its
    singular value (half-way to whitening)."""

    mean: np.ndarray  # (joined width,) float32
    basis: np.ndarray  # (joined width, dims) float32

    @classmethod
    def fit(cls, joined: np.ndarray, dims: int) -> Reduction:
        mean = joined.mean(axis=0)
        centred = joined - mean
        gram = (centred.T @ centred).astype(np.float64)
        values, vectors = np.linalg.eigh(gram)  # ascending
        k = int(min(dims, len(joined) - 1, joined.shape[1]))
        top = np.argsort(values)[::-1][:k]
        singular = np.sqrt(np.maximum(values[top], 1e-12))
        return cls(
            mean.astype(np.float32),
            (vectors[:, top] * singular ** (REDUCE_POWER - 1.0)).astype(np.float32),
        )

    @property
    def dims(self) -> int:
        return int(self.basis.shape[1])

    def apply(self, joined: np.ndarray, *, centre: bool) -> np.ndarray:
        """Unit rows on the reduced axes; zero rows (no text) stay zero. Papers are centred on
        the edition's mean; interest phrases are not (see SemanticModel)."""
        has = np.abs(joined).sum(axis=1) > 0
        rows = joined - self.mean if centre else joined
        out = np.asarray(rows @ self.basis, dtype=np.float32)
        out[~has] = 0.0
        return normalise_rows(out)
