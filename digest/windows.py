"""Which papers each subscriber's digest covers. Pure: no I/O, no clock reads.

A digest covers the papers first seen since the subscriber's previous delivered digest was
composed (its `window_end`), daily and weekly alike, so a weekend, a holiday or a held edition
loses nothing and repeats nothing; the window never reaches further back than
`calendar.max_window_days`. A first digest covers `ranking.candidate_days` (a week if weekly).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from scipy import sparse

from digest.models import Subscriber
from digest.settings import Settings


def pool_days(settings: Settings) -> int:
    """Days of papers an edition must hold for the widest window of any subscriber."""
    return max(settings.calendar.max_window_days, settings.ranking.candidate_days)


def window_start(
    subscriber: Subscriber, previous_end: datetime | None, *, now: datetime, settings: Settings
) -> datetime:
    earliest = now - timedelta(days=settings.calendar.max_window_days)
    if previous_end is None:
        days = 7 if subscriber.frequency == "weekly" else settings.ranking.candidate_days
        return max(earliest, now - timedelta(days=days))
    return max(earliest, previous_end)


def papers_wanted(subscriber: Subscriber, settings: Settings) -> int:
    """How many papers this subscriber's digest may hold: a weekly one picks the best of a week."""
    if subscriber.frequency == "weekly":
        return max(settings.calendar.weekly_papers_per_digest, settings.ranking.papers_per_digest)
    return settings.ranking.papers_per_digest


def epoch_us(moments: Sequence[datetime]) -> np.ndarray:
    return np.fromiter((int(m.timestamp() * 1e6) for m in moments), dtype=np.int64)


def before_window(first_seen_us: np.ndarray, starts_us: np.ndarray) -> sparse.csr_matrix:
    """(subscribers x papers) 1 where a paper was first seen before that subscriber's window.

    Vectorised: each row is a prefix of the papers sorted by first sight, so the whole matrix
    is one argsort, one searchsorted and index arithmetic.
    """
    n, m = len(starts_us), len(first_seen_us)
    order = np.argsort(first_seen_us, kind="stable")
    cuts = np.searchsorted(first_seen_us[order], starts_us, side="left")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(cuts, out=indptr[1:])
    total = int(indptr[-1])
    positions = np.arange(total, dtype=np.int64) - np.repeat(indptr[:-1], cuts)
    indices = order[positions] if total else np.zeros(0, dtype=np.int64)
    data = np.ones(total, dtype=np.float32)
    return sparse.csr_matrix((data, indices, indptr), shape=(n, m))


def in_window_counts(first_seen_us: np.ndarray, starts_us: np.ndarray) -> np.ndarray:
    """How many papers each subscriber's window holds."""
    ordered = np.sort(first_seen_us)
    return len(ordered) - np.searchsorted(ordered, starts_us, side="left")
