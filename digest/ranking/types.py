"""Plain frozen values the ranker takes and returns: candidates, profiles, picks, parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Candidate:
    """A paper as the ranker sees it. `id` is the paper key (a string)."""

    id: str
    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    upvotes: int | None = None
    github_stars: int | None = None
    published: datetime | None = None
    liked_by: int = 0
    # Upvotes at the previous fetch: the difference is the paper's velocity.
    upvotes_prev: int | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """What one subscriber told us: interest text, liked/disliked paper ids, categories, ..."""

    user: str
    interests: str = ""
    like: tuple[str, ...] = ()
    dislike: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    muted: tuple[str, ...] = ()
    exclude: frozenset[str] = field(default_factory=frozenset)
    trending_weight: float | None = None


@dataclass(frozen=True, slots=True)
class Pick:
    """One ranked paper for one profile, with the reason it was picked.

    kind is "match" for a pick on its relevance and "trending" for the labelled fill that
    `compose_digest` adds when too few papers pass the minimum relevance.
    """

    id: str
    score: float
    relevance: float
    trending: float
    why: str
    kind: str = "match"


@dataclass(frozen=True, slots=True)
class RankParams:
    """Knobs of the blend; defaults as measured best by benchmarks/ranking_quality.py."""

    trending_weight: float = 0.25
    dislike_weight: float = 0.5
    # Rows scored per block (capped at scoring.BLOCK = 1,024): memory is threads x block x m.
    chunk_size: int = 5000
    # Diversity pass strength: 0 turns it off; papers whose TF-IDF cosine with a better pick is
    # at least `duplicate_similarity` are penalised by diversity * similarity (MMR).
    diversity: float = 0.3
    duplicate_similarity: float = 0.5
    # Share of the relevance taken from exact TF-IDF term matches of the interest text (the rest
    # is the dense semantic profile).
    interest_term_share: float = 0.5
    # Rocchio-style "specificity" correction: similarity to the corpus centroid is subtracted,
    # so generic papers stop outranking the ones specific to the profile (+4-6 points P@10).
    genericity_penalty: float = 0.5
    # Likes needed to weigh as much as the interest text (see chunks.chunk_terms).
    likes_prior: float = 10.0
    category_boost: float = 0.3
    # Calibrated units (a row's 3rd best paper is 1) by which a followed author's papers sit
    # above the row's best other paper: followed authors rank first (calibration._lead_followed).
    author_lead: float = 1.0
    # Relevance below which a row's reference is not taken (calibration.score_chunk): on a day with
    # nothing near the profile, the best of the noise is not scaled up to a "relevant" 1.0.
    relevance_floor: float = 0.1
    # Trending: half-life of the recency decay, in days (None: no decay).
    recency_half_life_days: float | None = 3.0
