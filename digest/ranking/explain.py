"""One honest line per pick, read off the same quantities that produced its score.

- "matches: quantization, low bit": the TF-IDF terms contributing most to the overlap between
  the paper and the profile's text (interest text, plus the centroid of liked papers).
- "close to “<title>”": the liked paper nearest to this one in the dense space, when the
  likes drove the pick.
- "by <author>, whom you follow" / "in cs.LG, a category you follow": the boosts that applied.
- "trending: N upvotes": when the community signal carried at least as much as relevance.

Reasons are built for a block of subscribers at once (`explain_rows`): an email batch renders
every subscriber's picks, so per-pick scipy indexing (each `matrix[i]` costs ~20 us) would
dominate sending. Instead the CSR arrays (indptr/indices/data) of the block's likes, interest
rows and picked papers are gathered in a few vectorised calls; each subscriber's profile term
row is scattered into a dense scratch vector and read only at its picks' terms; the products
are sorted for all picks at once. Python loops only over the picks, to assemble strings.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import cast

import numpy as np

from digest.ranking.context import RankContext, _author_key
from digest.ranking.profiles import ProfileBatch
from digest.ranking.types import Candidate, Pick
from digest.ranking.vectors import TextModel
from digest.texts import unicode_text

CLOSE_TO = 0.3  # dense cosine above which "close to <liked paper>" is a fair statement
MAX_TERMS = 3
# Products looked at per pick to find MAX_TERMS non-redundant terms (a bigram and its words
# are redundant). Bounds the Python work; should the best 8 hold fewer than 3 non-redundant
# terms (never seen on the sample data), the reason names fewer terms.
SCAN_TERMS = 8


def _short(title: str, limit: int = 70) -> str:
    title = " ".join(title.split())
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def _segments(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions, owner) of all CSR entries of `rows`, in row order: a vectorised gather."""
    starts = indptr[rows].astype(np.int64)
    lengths = indptr[rows + 1].astype(np.int64) - starts
    owner = np.repeat(np.arange(len(rows)), lengths)
    offsets = np.cumsum(lengths) - lengths
    positions = np.arange(int(lengths.sum()), dtype=np.int64) - offsets[owner] + starts[owner]
    return positions, owner


def _liked_entries(
    context: RankContext, batch: ProfileBatch, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row bounds, terms, values) of every liked paper's TF-IDF entries, weighted 1/|likes|,
    for each of `rows`, in row order: the liked-centroid part of each profile's term row."""
    likes = batch.likes
    positions, owner = _segments(likes.indptr, rows)
    liked = likes.data[positions] > 0  # liked, not disliked, pool papers
    positions, owner = positions[liked], owner[liked]
    weight = (1.0 / np.maximum(np.bincount(owner, minlength=len(rows)), 1)).astype(np.float32)
    pool = context.pool_vectors.tfidf
    entries, like = _segments(pool.indptr, likes.indices[positions].astype(np.int64))
    owner = owner[like]
    bounds = np.searchsorted(owner, np.arange(len(rows) + 1))
    return bounds, pool.indices[entries], pool.data[entries] * weight[owner]


def matched_term_lists(
    context: RankContext,
    batch: ProfileBatch,
    rows: np.ndarray,
    pair_row: np.ndarray,
    pair_col: np.ndarray,
    limit: int = MAX_TERMS,
) -> list[list[str]]:
    """For each (row, candidate column) pair, row-ordered: the terms with the largest positive
    profile x paper TF-IDF product, best first (ties: lower term index), non-redundant.

    Each profile's term row (interest text + centroid of liked papers) is scattered into one
    dense scratch vector and read back only at its picks' terms: a few small numpy calls per
    subscriber (measured faster than one dense block per 64 rows, which misses the cache)
    instead of sparse products over the whole vocabulary.
    """
    paper = context.vectors.tfidf
    positions, pair = _segments(paper.indptr, pair_col)
    term = paper.indices[positions]
    product = np.zeros(len(positions), dtype=np.float32)
    query_bounds = np.searchsorted(pair_row[pair], np.arange(len(rows) + 1)).tolist()
    like_bounds, like_terms, like_values = _liked_entries(context, batch, rows)
    like_bounds = like_bounds.tolist()
    interests = batch.interests
    scratch = np.zeros(paper.shape[1], dtype=np.float32)
    for r, i in enumerate(rows.tolist()):
        lo, hi = like_bounds[r], like_bounds[r + 1]
        a, b = interests.indptr[i], interests.indptr[i + 1]
        if lo == hi and a == b:
            continue
        # Same float32 sums, in the same order, as (liked centroid) + interest row.
        touched = like_terms[lo:hi]
        np.add.at(scratch, touched, like_values[lo:hi])
        if b > a:
            scratch[interests.indices[a:b]] += interests.data[a:b]
            touched = np.concatenate([touched, interests.indices[a:b]])
        q = slice(query_bounds[r], query_bounds[r + 1])
        product[q] = scratch[term[q]]
        scratch[touched] = 0
    product *= paper.data[positions]
    keep = product > 0
    pair, term = _best_first(pair[keep], term[keep], product[keep], len(pair_col))
    # Rank of each entry within its pair; only the best SCAN_TERMS go to the Python filter.
    scan = np.arange(len(pair)) - np.searchsorted(pair, pair) < SCAN_TERMS
    pair, term = pair[scan].tolist(), term[scan].tolist()
    vocabulary = context.vocabulary
    found: list[dict[str, int]] = [{} for _ in range(len(pair_col))]
    for rank, (p, t) in enumerate(zip(pair, term, strict=True)):
        found[p].setdefault(vocabulary[t], rank)  # rank: lower is a larger product
    phrases = _PaperPhrases.of(context)
    return [
        phrases.named(int(col), weights, limit) if weights else []
        for col, weights in zip(pair_col.tolist(), found, strict=True)
    ]


class _PaperPhrases:
    """Matched terms as the phrases a paper writes them in, e.g. the terms "quantum error" and
    "error correction" as "quantum error correction", "post training" and "training
    quantization" as "post-training quantization". Each candidate's tokens (with their places
    in its title and abstract) are found once per edition, when one of its picks is explained.
    """

    def __init__(self, context: RankContext) -> None:
        # The semantic backend keeps its TF-IDF model as `base`.
        model = cast(TextModel, getattr(context.model, "base", context.model))
        vectorizer = model.vectorizer
        self.pattern = re.compile(vectorizer.token_pattern)
        self.stop = vectorizer.get_stop_words() or frozenset()
        self.candidates = context.candidates
        self.tokens: dict[int, tuple[str, list[tuple[str, int, int]]]] = {}
        self.lock = threading.Lock()

    @classmethod
    def of(cls, context: RankContext) -> _PaperPhrases:
        cached = context.__dict__.get("_phrases")
        if cached is None:
            cached = context.__dict__["_phrases"] = cls(context)
        return cached

    def _tokens(self, column: int) -> tuple[str, list[tuple[str, int, int]]]:
        got = self.tokens.get(column)
        if got is None:
            paper = self.candidates[column]
            text = f"{paper.title}. {paper.abstract}"
            got = (
                text,
                [
                    (m.group().lower(), m.start(), m.end())
                    for m in self.pattern.finditer(text)
                    if m.group().lower() not in self.stop
                ],
            )
            with self.lock:
                self.tokens[column] = got
        return got

    def named(self, column: int, ranks: dict[str, int], limit: int) -> list[str]:
        """Up to `limit` phrases of the paper made of matched terms, most matched first."""
        text, tokens = self._tokens(column)
        marked = [False] * len(tokens)
        for i, (token, _, _) in enumerate(tokens):
            if token in ranks:
                marked[i] = True
            if i + 1 < len(tokens) and f"{token} {tokens[i + 1][0]}" in ranks:
                marked[i] = marked[i + 1] = True
        runs: dict[str, tuple[int, str]] = {}
        i = 0
        while i < len(tokens):
            if not marked[i]:
                i += 1
                continue
            j = i
            # A phrase continues over spaces and hyphens only, as written in the paper.
            while (
                j + 1 < len(tokens)
                and marked[j + 1]
                and j + 1 - i < MAX_PHRASE_TOKENS
                and _JOINER.fullmatch(text[tokens[j][2] : tokens[j + 1][1]])
            ):
                j += 1
            words = [t[0] for t in tokens[i : j + 1]]
            terms = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
            best = min((ranks[t] for t in terms if t in ranks), default=None)
            phrase = text[tokens[i][1] : tokens[j][2]]
            key = phrase.lower()
            if best is not None and _worth_naming(phrase):
                if key not in runs:
                    runs[key] = (best - len(words), phrase)  # longer phrases first on ties
                elif _capitalised(phrase) < _capitalised(runs[key][1]):
                    # Met first capitalised by the title: the abstract's spelling reads
                    # better in a sentence ("quantum circuits", not "Quantum Circuits");
                    # acronyms (LLM, QEC) are not capitalisation and stay.
                    runs[key] = (runs[key][0], phrase)
            i = j + 1
        named: list[str] = []
        for _, phrase in sorted(runs.values()):
            low = phrase.lower()
            if any(low in n.lower() or n.lower() in low for n in named):
                continue
            named.append(phrase)
            if len(named) == limit:
                break
        return named


MAX_PHRASE_TOKENS = 5
_JOINER = re.compile(r"[ \t\-‐–]{1,2}")


def _capitalised(phrase: str) -> int:
    """Words written with a capital first letter that are not acronyms."""
    return sum(1 for w in re.split(r"[\s\-‐–]+", phrase) if w[:1].isupper() and not w.isupper())


def _worth_naming(phrase: str) -> bool:
    """A lone short word says little ("bit", "use"); an acronym (LLM, QEC) or a phrase does."""
    if " " in phrase or "-" in phrase:
        return True
    return len(phrase) >= 4 or phrase.isupper()


def _best_first(
    pair: np.ndarray, term: np.ndarray, product: np.ndarray, n_pairs: int
) -> tuple[np.ndarray, np.ndarray]:
    """(pair, term) sorted by pair, then product descending, then term: one integer sort.

    The three keys are packed into one uint64 (positive float32 bit patterns sort like the
    floats), because np.lexsort is ~5x slower than sorting plain integers.
    """
    pair_bits = max(int(n_pairs).bit_length(), 1)
    term_bits = max(int(term.max(initial=0)).bit_length(), 1)
    if pair_bits + 32 + term_bits > 64:  # huge blocks or vocabularies: the general sort
        order = np.lexsort((term, -product, pair))
        return pair[order], term[order]
    inverted = np.uint64(0xFFFFFFFF) - product.astype(np.float32).view(np.uint32)
    keys = (
        (pair.astype(np.uint64) << np.uint64(32 + term_bits))
        | (inverted.astype(np.uint64) << np.uint64(term_bits))
        | term.astype(np.uint64)
    )
    keys.sort()
    term_mask = np.uint64((1 << term_bits) - 1)
    return (
        (keys >> np.uint64(32 + term_bits)).astype(np.int64),
        (keys & term_mask).astype(np.int64),
    )


def trending_reason(paper: Candidate) -> str | None:
    """The community signal behind a trending pick, in words; None when there is none."""
    if paper.upvotes:
        return f"trending: {paper.upvotes} upvotes on Hugging Face"
    if paper.github_stars:
        return f"trending: {paper.github_stars} GitHub stars"
    if paper.liked_by:
        readers = "reader" if paper.liked_by == 1 else "readers"
        return f"trending: liked by {paper.liked_by} {readers} here"
    return None


def explain_rows(
    context: RankContext,
    batch: ProfileBatch,
    rows: Sequence[int],
    columns: np.ndarray,
    scores: np.ndarray,
    relevance: np.ndarray,
    weight: np.ndarray,
    scale: np.ndarray,
) -> list[list[Pick]]:
    """`Pick`s with reasons for the given batch rows; columns/scores/relevance are (n, k)."""
    picked = np.asarray(rows, dtype=np.int64)
    if len(picked) == 0:
        return []
    cols = columns[picked]
    valid = cols >= 0
    pair_row, pair_slot = np.nonzero(valid)
    pair_col = cols[pair_row, pair_slot].astype(np.int64)
    words = matched_term_lists(context, batch, picked, pair_row, pair_col)

    likes = batch.likes
    cat_ptr, cat_idx = batch.categories.indptr, batch.categories.indices
    auth_ptr, auth_idx = batch.authors.indptr, batch.authors.indices
    interest_ptr = batch.interests.indptr
    category_names, author_names = context.category_names, context.author_names
    pool_dense, cand_dense = context.pool_vectors.dense, context.vectors.dense
    candidates, pool = context.candidates, context.pool
    # Python floats for the whole block at once (numpy scalar access costs ~0.3 us each).
    pair_score = scores[picked[pair_row], pair_slot].tolist()
    pair_relevance = relevance[picked[pair_row], pair_slot].tolist()
    pair_trend = context.trend[pair_col].tolist()
    bounds = np.searchsorted(pair_row, np.arange(len(picked) + 1)).tolist()
    pair_col_list = pair_col.tolist()
    short_titles: dict[int, str] = {}
    out: list[list[Pick]] = []
    for r, i in enumerate(picked.tolist()):
        first, last = bounds[r], bounds[r + 1]
        lo, hi = likes.indptr[i], likes.indptr[i + 1]
        liked = likes.indices[lo:hi][likes.data[lo:hi] > 0]
        nearest: list[int] = []
        if len(liked) and last > first:
            # (likes x picks) cosines in one small product: nearest liked paper per pick.
            sims = pool_dense[liked] @ cand_dense[pair_col[first:last]].T
            best = sims.argmax(axis=0)
            nearest = liked[best].tolist()
            close = (sims[best, np.arange(last - first)] >= CLOSE_TO).tolist()
        followed_cats = {category_names[k] for k in cat_idx[cat_ptr[i] : cat_ptr[i + 1]]}
        followed_authors = {author_names[k] for k in auth_idx[auth_ptr[i] : auth_ptr[i + 1]]}
        w = float(weight[i])
        # The blend's two parts as the score added them: calibrated relevance, trending.
        relevance_scale = float(scale[i])
        has_interests = interest_ptr[i + 1] > interest_ptr[i]
        picks: list[Pick] = []
        for p in range(first, last):
            paper = candidates[pair_col_list[p]]
            rel, trending = pair_relevance[p], pair_trend[p]
            relevance_part, trending_part = (1 - w) * rel * relevance_scale, w * trending
            closest = None
            if nearest:
                k = nearest[p - first]
                closest = short_titles.get(k)
                if closest is None:
                    closest = short_titles[k] = _short(pool[k].title)
            why = _reasons(
                paper,
                followed_authors=followed_authors,
                closest=closest,
                is_close=bool(nearest) and close[p - first],
                words=words[p],
                followed_categories=followed_cats,
                has_interests=has_interests,
                relevance_part=relevance_part,
                trending_part=trending_part,
            )
            picks.append(Pick(paper.id, pair_score[p], rel, trending, why))
        out.append(picks)
    return out


def _reasons(
    paper: Candidate,
    *,
    followed_authors: set[str],
    closest: str | None,
    is_close: bool,
    words: list[str],
    followed_categories: set[str],
    has_interests: bool,
    relevance_part: float,
    trending_part: float,
) -> str:
    """Why a pick is in the digest, at most three reasons, strongest signals first."""
    reasons: list[str] = []
    if followed_authors:
        followed = [a for a in paper.authors if _author_key(a) in followed_authors]
        if followed:
            reasons.append(f"by {unicode_text(followed[0])}, whom you follow")
    if closest is not None and is_close:
        reasons.append(f"close to “{closest}”")
    if words and relevance_part > 0:
        reasons.append("matches: " + ", ".join(words))
    if followed_categories and len(reasons) < 2:
        matched_cats = [c for c in paper.categories if c.lower() in followed_categories]
        if matched_cats:
            reasons.append(f"in {matched_cats[0]}, a category you follow")
    if trending_part > 0 and (trending_part >= relevance_part or not reasons):
        trending_why = trending_reason(paper)
        if trending_why:
            reasons.append(trending_why)
    if not reasons:
        # Neither signal stands out (a weak day): say which liked paper is nearest, or
        # that the interest text is near in the dense view (LSA or embeddings) though
        # no term of it occurs in the paper.
        if closest is not None:
            reasons.append(f"nearest to “{closest}”")
        elif has_interests and relevance_part > 0:
            reasons.append("related to your interests")
        else:
            reasons.append("new today")
    return "; ".join(reasons[:3])
