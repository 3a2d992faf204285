"""Community trending: one number in [0, 1] per candidate paper, computed once per edition.

Signals, each log-scaled (a paper with 400 upvotes is not 40x more interesting than one with
10) and normalised by the edition's maximum so that a quiet day still has a top paper:
upvotes, their velocity since the previous fetch, GitHub stars, and how many of our own
subscribers rated it up. A recency decay then halves a paper's trend every half-life.
Papers without any signal score 0; papers without a date are not decayed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from digest.ranking.types import Candidate

# Relative weights of the signals; upvotes are the main one (HF daily papers' own ordering).
WEIGHTS = {"upvotes": 1.0, "velocity": 0.5, "stars": 0.3, "liked_by": 0.7}


def _scaled(values: np.ndarray) -> np.ndarray:
    signal = np.log1p(np.maximum(values, 0.0))
    top = signal.max(initial=0.0)
    scaled: np.ndarray = signal / top if top > 0 else signal
    return scaled


def _age_days(published: datetime | None, now: datetime) -> float:
    if published is None:
        return 0.0
    if published.tzinfo is None:  # naive datetimes are UTC throughout the project
        published = published.replace(tzinfo=UTC)
    return max((now - published).total_seconds() / 86400.0, 0.0)


def trending_scores(
    candidates: Sequence[Candidate],
    *,
    now: datetime | None = None,
    half_life_days: float | None = 3.0,
) -> np.ndarray:
    """Per-paper community signal in [0, 1] (float64, same order as `candidates`)."""
    n = len(candidates)
    if n == 0:
        return np.zeros(0)
    upvotes = np.array([c.upvotes or 0 for c in candidates], dtype=float)
    prev = np.array(
        [c.upvotes_prev if c.upvotes_prev is not None else (c.upvotes or 0) for c in candidates],
        dtype=float,
    )
    stars = np.array([c.github_stars or 0 for c in candidates], dtype=float)
    liked = np.array([c.liked_by for c in candidates], dtype=float)
    parts = {
        "upvotes": _scaled(upvotes),
        "velocity": _scaled(upvotes - prev),
        "stars": _scaled(stars),
        "liked_by": _scaled(liked),
    }
    # Only signals present in this edition count, so a feed without stars is not capped at 0.7.
    active = [k for k, v in parts.items() if v.any()]
    if not active:
        return np.zeros(n)
    total = sum(WEIGHTS[k] * parts[k] for k in active) / sum(WEIGHTS[k] for k in active)
    if now is not None and half_life_days:
        ages = np.array([_age_days(c.published, now) for c in candidates])
        total = total * np.power(0.5, ages / half_life_days)
        top = total.max(initial=0.0)
        total = total / top if top > 0 else total
    return np.clip(total, 0.0, 1.0)
