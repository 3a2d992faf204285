"""Everything about an edition's candidates that is computed once and shared by all subscribers.

Vectors of the candidates and of the pool (papers that likes may point at), the trending
signal, category and author incidence, and which candidates have a near-duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import numpy as np
from scipy import sparse

from digest.ranking.authors import AuthorIndex, author_key
from digest.ranking.trending import trending_scores
from digest.ranking.types import Candidate, RankParams
from digest.ranking.vectors import PaperVectors, TextBackend, fit_for


def _incidence(
    values: Sequence[Sequence[str]], normalise: Callable[[str], str] = str.lower
) -> tuple[dict[str, int], sparse.csr_matrix]:
    """(vocabulary, (terms, papers) 0/1 matrix) for per-paper lists such as categories."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for j, items in enumerate(values):
        for item in {normalise(v) for v in items if v}:
            rows.append(vocab.setdefault(item, len(vocab)))
            cols.append(j)
    data = np.ones(len(rows), dtype=np.float32)
    matrix = sparse.csr_matrix((data, (rows, cols)), shape=(len(vocab), len(values)))
    return vocab, matrix


@dataclass
class RankContext:
    candidates: list[Candidate]
    index: dict[str, int]  # candidate id -> column
    pool: list[Candidate]  # candidates first, then other known papers
    pool_index: dict[str, int]
    model: TextBackend  # TextModel, or the semantic backend (ranking/semantic.py)
    vectors: PaperVectors  # of the candidates
    pool_vectors: PaperVectors
    trend: np.ndarray  # (m,)
    trend_order: np.ndarray  # candidate columns by trending, best first
    categories: dict[str, int]
    category_matrix: sparse.csr_matrix  # (categories, m)
    authors: dict[str, int]
    author_matrix: sparse.csr_matrix  # (authors, m)
    has_duplicate: np.ndarray  # (m,) bool: some other candidate is a near-copy
    duplicates: sparse.csr_matrix  # (m, m) TF-IDF cosine where >= duplicate_similarity
    texts: list[str]  # lower-cased title + abstract, for muted words

    @property
    def size(self) -> int:
        return len(self.candidates)

    @cached_property
    def category_names(self) -> list[str]:
        """Row of `category_matrix` -> category name (the inverse of `categories`)."""
        return _inverse(self.categories)

    @cached_property
    def author_names(self) -> list[str]:
        return _inverse(self.authors)

    @cached_property
    def author_index(self) -> AuthorIndex:
        """Today's authors, for matching followed names (initials too), built once."""
        return AuthorIndex(self.author_names)

    @cached_property
    def tfidf_by_term(self) -> sparse.csr_matrix:
        """(terms, m) CSR transpose of the candidates' TF-IDF, for profile x paper products
        (built once: transposing per block cost a third of the profile work)."""
        return self.vectors.tfidf.T.tocsr()

    @cached_property
    def vocabulary(self) -> list[str]:
        """The model's terms as Python strings (numpy string scalars are slow to handle)."""
        terms: list[str] = self.model.terms.tolist()
        return terms


def _inverse(vocab: dict[str, int]) -> list[str]:
    names = [""] * len(vocab)
    for name, k in vocab.items():
        names[k] = name
    return names


def build_context(
    candidates: Sequence[Candidate],
    *,
    pool: Sequence[Candidate] = (),
    model: TextBackend | None = None,
    now: datetime | None = None,
    params: RankParams = RankParams(),
) -> RankContext:
    """Vectorise the candidates and pool once. Without `model`, one is fitted on them."""
    candidates = list({c.id: c for c in candidates}.values())
    index = {c.id: j for j, c in enumerate(candidates)}
    extra = [p for p in {p.id: p for p in pool}.values() if p.id not in index]
    full_pool = candidates + extra
    if model is None:
        model = fit_for(candidates, extra)
    vectors = model.encode(candidates)
    extra_vectors = model.encode(extra)
    pool_vectors = PaperVectors(
        sparse.vstack([vectors.tfidf, extra_vectors.tfidf]).tocsr(),
        np.vstack([vectors.dense, extra_vectors.dense]),
        np.concatenate([vectors.genericity, extra_vectors.genericity]),
    )
    trend = trending_scores(candidates, now=now, half_life_days=params.recency_half_life_days)
    trend_order = np.argsort(-trend, kind="stable")
    categories, category_matrix = _incidence([c.categories for c in candidates])
    authors, author_matrix = _incidence([c.authors for c in candidates], author_key)
    similar = (vectors.tfidf @ vectors.tfidf.T).tocsr()
    similar.setdiag(0)
    similar.data[similar.data < params.duplicate_similarity] = 0
    similar.eliminate_zeros()
    has_duplicate = np.diff(similar.indptr) > 0
    texts = [f"{c.title}\n{c.abstract}".lower() for c in candidates]
    return RankContext(
        candidates,
        index,
        full_pool,
        {p.id: i for i, p in enumerate(full_pool)},
        model,
        vectors,
        pool_vectors,
        trend,
        trend_order,
        categories,
        category_matrix.tocsr(),
        authors,
        author_matrix.tocsr(),
        has_duplicate,
        similar,
        texts,
    )


_author_key = author_key  # the name tests and older callers use
