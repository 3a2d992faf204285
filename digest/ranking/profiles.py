"""Subscriber profiles as sparse matrices, built per call so yesterday's clicks count today.

Nothing global is trained: a profile is the sum of what the subscriber told us, expressed in
the edition's vector space. A `ProfileBatch` holds, for n subscribers: interest-text TF-IDF
rows, signed like/dislike weights over the pool, category/author/muted-word incidence over the
candidates, and the banned (delivered or rated) candidates. Building it is one pass over the
ids the profiles mention; no loop over subscriber x paper.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from digest.ranking.context import RankContext, _author_key
from digest.ranking.types import Profile, RankParams


@dataclass
class ProfileBatch:
    users: list[str]
    interests: sparse.csr_matrix  # (n, terms) L2-normalised TF-IDF of the interest text
    likes: sparse.csr_matrix  # (n, pool): +1/|likes| per like, -w/|dislikes| per dislike
    categories: sparse.csr_matrix  # (n, context.categories) followed categories present today
    authors: sparse.csr_matrix  # (n, context.authors) followed authors present today
    banned: sparse.csr_matrix  # (n, m) 1 where delivered, rated, or containing a muted word
    trending_weight: np.ndarray  # (n,) NaN = the default of RankParams

    def __len__(self) -> int:
        return len(self.users)

    def empty(self) -> np.ndarray:
        """Rows with no usable signal at all: they get the pure trending digest."""
        def nnz(m: sparse.csr_matrix) -> np.ndarray:
            return np.diff(m.indptr) > 0

        has_likes = np.asarray((self.likes > 0).sum(axis=1)).ravel() > 0
        return ~(nnz(self.interests) | has_likes | nnz(self.categories) | nnz(self.authors))


def _rows_to_csr(rows: list[list[int]], width: int, values: list[list[float]] | None = None):
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    indices = np.fromiter((c for r in rows for c in r), dtype=np.int32, count=int(indptr[-1]))
    if values is None:
        data = np.ones(len(indices), dtype=np.float32)
    else:
        data = np.fromiter((v for r in values for v in r), dtype=np.float32, count=len(indices))
    matrix = sparse.csr_matrix((data, indices, indptr), shape=(len(rows), width))
    matrix.sum_duplicates()
    return matrix


def _muted_columns(context: RankContext, word: str) -> list[int]:
    pattern = re.compile(r"(?<!\w)" + re.escape(word.lower().strip()) + r"(?!\w)")
    return [j for j, text in enumerate(context.texts) if pattern.search(text)]


def build_batch(
    profiles: Sequence[Profile], context: RankContext, params: RankParams = RankParams()
) -> ProfileBatch:
    m = context.size
    # Interest texts repeat across a list (presets, copy-paste): vectorise each distinct one once.
    distinct: dict[str, int] = {}
    which = [distinct.setdefault(p.interests.strip(), len(distinct)) for p in profiles]
    texts = list(distinct)
    matrix = context.model.tfidf(texts)
    interests = matrix[np.asarray(which, dtype=np.int64)] if profiles else matrix

    pool_index, index = context.pool_index, context.index
    like_rows, like_vals, banned_rows = [], [], []
    category_rows, author_rows = [], []
    muted_cache: dict[str, list[int]] = {}
    for p in profiles:
        liked = [pool_index[i] for i in dict.fromkeys(p.like) if i in pool_index]
        disliked = [pool_index[i] for i in dict.fromkeys(p.dislike) if i in pool_index]
        like_rows.append(liked + disliked)
        like_vals.append(
            [1.0 / max(len(liked), 1)] * len(liked)
            + [-params.dislike_weight / max(len(disliked), 1)] * len(disliked)
        )
        banned = [index[i] for i in (*p.exclude, *p.like, *p.dislike) if i in index]
        for word in p.muted:
            if word.strip():
                if word not in muted_cache:
                    muted_cache[word] = _muted_columns(context, word)
                banned.extend(muted_cache[word])
        banned_rows.append(banned)
        category_rows.append(
            [context.categories[c.lower()] for c in p.categories if c.lower() in context.categories]
        )
        author_rows.append(
            [context.authors[k] for k in map(_author_key, p.authors) if k in context.authors]
        )
    banned = _rows_to_csr(banned_rows, m)
    banned.data[:] = 1.0
    weights = np.array(
        [np.nan if p.trending_weight is None else p.trending_weight for p in profiles],
        dtype=np.float64,
    )
    return ProfileBatch(
        users=[p.user for p in profiles],
        interests=interests.tocsr(),
        likes=_rows_to_csr(like_rows, len(context.pool), like_vals),
        categories=_rows_to_csr(category_rows, len(context.categories)),
        authors=_rows_to_csr(author_rows, len(context.authors)),
        banned=banned,
        trending_weight=weights,
    )
