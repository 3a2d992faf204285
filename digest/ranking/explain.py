"""One honest line per pick, read off the same quantities that produced its score.

- "matches: quantization, low bit": the TF-IDF terms contributing most to the overlap between
  the paper and the profile's text (interest text, plus the centroid of liked papers).
- "close to “<title>”": the liked paper nearest to this one in the dense space, when the
  likes drove the pick.
- "by <author>, whom you follow" / "in cs.LG, a category you follow": the boosts that applied.
- "trending: N upvotes": when the community signal carried at least as much as relevance.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from digest.ranking.context import RankContext, _author_key

CLOSE_TO = 0.35  # dense cosine above which "close to <liked paper>" is a fair statement
MAX_TERMS = 3


def _short(title: str, limit: int = 70) -> str:
    title = " ".join(title.split())
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def matched_terms(
    context: RankContext, profile_terms: sparse.csr_matrix, column: int, limit: int = MAX_TERMS
) -> list[str]:
    """Terms with the largest positive profile x paper TF-IDF product, best first."""
    paper = context.vectors.tfidf[column]
    product = profile_terms.multiply(paper).tocsr()
    if product.nnz == 0:
        return []
    order = np.argsort(-product.data, kind="stable")
    words: list[str] = []
    for o in order:
        if product.data[o] <= 0 or len(words) >= limit:
            break
        term = str(context.model.terms[product.indices[o]])
        # A bigram already listed makes its words redundant, and vice versa.
        if not any(term in w or w in term for w in words):
            words.append(term)
    return words


def explain(
    context: RankContext,
    *,
    column: int,
    relevance_part: float,
    trending_part: float,
    interest_terms: sparse.csr_matrix,
    liked_rows: np.ndarray,
    categories: set[str],
    authors: set[str],
) -> str:
    """The reason for one pick. `*_part` are the two weighted halves of its final score."""
    paper = context.candidates[column]
    reasons: list[str] = []
    followed = [a for a in paper.authors if _author_key(a) in authors]
    if followed:
        reasons.append(f"by {followed[0]}, whom you follow")
    if len(liked_rows):
        sims = context.pool_vectors.dense[liked_rows] @ context.vectors.dense[column]
        best = int(np.argmax(sims))
        if sims[best] >= CLOSE_TO:
            reasons.append(f"close to “{_short(context.pool[liked_rows[best]].title)}”")
    profile_terms = interest_terms
    if len(liked_rows):
        centroid = context.pool_vectors.tfidf[liked_rows].sum(axis=0) / len(liked_rows)
        profile_terms = profile_terms + sparse.csr_matrix(centroid, dtype=np.float32)
    words = matched_terms(context, sparse.csr_matrix(profile_terms), column)
    if words and relevance_part > 0:
        reasons.append("matches: " + ", ".join(words))
    matched_cats = [c for c in paper.categories if c.lower() in categories]
    if matched_cats and len(reasons) < 2:
        reasons.append(f"in {matched_cats[0]}, a category you follow")
    if trending_part >= relevance_part or not reasons:
        if paper.upvotes:
            reasons.append(f"trending: {paper.upvotes} upvotes")
        elif paper.liked_by:
            reasons.append(f"trending: liked by {paper.liked_by} readers")
        elif not reasons:
            reasons.append("new today")
    return "; ".join(reasons[:3])
