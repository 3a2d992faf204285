"""Subscriber profiles as sparse matrices, built per call so yesterday's clicks count today.

Nothing global is trained: a profile is the sum of what the subscriber told us, expressed in
the edition's vector space. A `ProfileBatch` holds, for n subscribers: interest-text TF-IDF
rows, signed like/dislike weights over the pool, category/author incidence over the candidates,
and the banned (delivered, rated, or muted by word or category) candidates. Building it is one
pass over the ids the profiles mention; no loop over subscriber x paper.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np
from scipy import sparse

from digest.ranking.context import RankContext
from digest.ranking.types import Profile, RankParams


@dataclass
class ProfileBatch:
    users: list[str]
    interests: sparse.csr_matrix  # (n, terms) L2-normalised TF-IDF of the interest text
    likes: sparse.csr_matrix  # (n, pool): +1/|likes| per like, -w/|dislikes| per dislike
    categories: sparse.csr_matrix  # (n, context.categories) followed categories present today
    authors: sparse.csr_matrix  # (n, context.authors) followed authors present today
    banned: sparse.csr_matrix  # (n, m) 1 where delivered, rated, or muted (word/category)
    trending_weight: np.ndarray  # (n,) NaN = the default of RankParams

    def __len__(self) -> int:
        return len(self.users)

    def empty(self) -> np.ndarray:
        """Rows with no usable signal at all: they get the pure trending digest."""

        def nnz(m: sparse.csr_matrix) -> np.ndarray:
            filled: np.ndarray = np.diff(m.indptr) > 0
            return filled

        has_likes = np.asarray((self.likes > 0).sum(axis=1)).ravel() > 0
        empty: np.ndarray = ~(
            nnz(self.interests) | has_likes | nnz(self.categories) | nnz(self.authors)
        )
        return empty


def _muted_columns(context: RankContext, word: str) -> list[int]:
    """Candidates a muted entry hides: the word in the title or abstract, or, when the entry
    names a category (cs.CV, quant-ph), every paper listed in it."""
    key = word.lower().strip()
    pattern = re.compile(r"(?<!\w)" + re.escape(key) + r"(?!\w)")
    columns = {j for j, text in enumerate(context.texts) if pattern.search(text)}
    row = context.categories.get(key)
    if row is not None:
        matrix = context.category_matrix
        columns.update(matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]].tolist())
    return sorted(columns)


def _muted_matrix(profiles: Sequence[Profile], context: RankContext) -> sparse.csr_matrix | None:
    """(n, m) 1 where a profile's muted word occurs in a candidate; None when nobody mutes."""
    muted_rows: list[int] = []
    muted_cols: list[int] = []
    muted_cache: dict[str, list[int]] = {}
    for r, p in enumerate(profiles):
        for word in p.muted:  # rare: only subscribers who muted words
            if word.strip():
                if word not in muted_cache:
                    muted_cache[word] = _muted_columns(context, word)
                muted_rows.extend([r] * len(muted_cache[word]))
                muted_cols.extend(muted_cache[word])
    if not muted_rows:
        return None
    return sparse.csr_matrix(
        (np.ones(len(muted_rows), dtype=np.float32), (muted_rows, muted_cols)),
        shape=(len(profiles), context.size),
    )


def _id_matrix(
    id_lists: Sequence[Collection[str]], index: dict[str, int], width: int
) -> sparse.csr_matrix:
    """(n, width) 0/1 CSR: row r has a 1 at index[x] for each known id x of id_lists[r].

    One flattened pass over all ids (no per-subscriber list building), then one sort of
    (row, column) keys: duplicates gone, columns sorted.
    """
    n = len(id_lists)
    lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=n)
    # map() of a bound dict method over a chain: no Python frame per id (~25 % faster).
    columns = np.fromiter(
        map(index.get, chain.from_iterable(id_lists), repeat(-1)),
        dtype=np.int64,
        count=int(lengths.sum()),
    )
    rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
    known = columns >= 0
    keys = rows[known] * max(width, 1) + columns[known]
    keys.sort()  # sort + neighbour test: ~5x faster here than np.unique's hash path
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys
    rows, columns = np.divmod(keys, max(width, 1))
    indptr = np.searchsorted(rows, np.arange(n + 1))
    return sparse.csr_matrix(
        (np.ones(len(keys), dtype=np.float32), columns.astype(np.int32), indptr),
        shape=(n, width),
    )


def _row_normalised(matrix: sparse.csr_matrix, total: float) -> sparse.csr_matrix:
    """Each row's entries set to total / (entries in the row)."""
    counts = np.diff(matrix.indptr)
    matrix.data = (total / np.repeat(np.maximum(counts, 1), counts)).astype(np.float32)
    return matrix


def build_batch(
    profiles: Sequence[Profile], context: RankContext, params: RankParams = RankParams()
) -> ProfileBatch:
    """The profiles as matrices. Vectorised: the only Python-level work is one generator pass
    per field over the profiles' ids (~0.1 us per id); a million subscribers take seconds."""
    n, m = len(profiles), context.size
    # Interest texts repeat across a list (presets, copy-paste): vectorise each distinct one
    # once, all in ONE transform call.
    distinct: dict[str, int] = {}
    which = np.fromiter(
        (distinct.setdefault(p.interests.strip(), len(distinct)) for p in profiles),
        dtype=np.int64,
        count=n,
    )
    matrix = context.model.tfidf(list(distinct))
    interests = matrix[which] if n else matrix

    pool_index, index, pool_size = context.pool_index, context.index, len(context.pool)
    # Likes: +1/|likes| per known liked paper; dislikes: -w/|dislikes|; a paper both liked
    # and disliked sums the two.
    liked = _id_matrix([p.like for p in profiles], pool_index, pool_size)
    disliked = _id_matrix([p.dislike for p in profiles], pool_index, pool_size)
    # The pool starts with the candidates, so rated candidates are the columns below m.
    banned = _id_matrix([p.exclude for p in profiles], index, m) + liked[:, :m] + disliked[:, :m]
    likes = _row_normalised(liked, 1.0)
    if disliked.nnz:
        likes = (likes + _row_normalised(disliked, -params.dislike_weight)).tocsr()
    muted = _muted_matrix(profiles, context)
    if muted is not None:
        banned = banned + muted
    banned = banned.tocsr()
    banned.sum_duplicates()
    banned.data[:] = 1.0
    categories = _id_matrix(
        [[c.lower() for c in p.categories] if p.categories else () for p in profiles],
        context.categories,
        len(context.categories),
    )
    # Each distinct followed name is matched against today's authors once (initials too).
    followed = context.author_index.resolve(chain.from_iterable(p.authors for p in profiles))
    authors = _id_matrix([p.authors for p in profiles], followed, len(context.authors))
    weights = np.fromiter(
        (np.nan if p.trending_weight is None else p.trending_weight for p in profiles),
        dtype=np.float64,
        count=n,
    )
    return ProfileBatch(
        users=[p.user for p in profiles],
        interests=interests.tocsr(),
        likes=likes,
        categories=categories,
        authors=authors,
        banned=banned,
        trending_weight=weights,
    )
