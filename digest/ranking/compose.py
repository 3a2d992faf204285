"""What goes into an email: matches, then labelled trending fill only when the field is thin.

`rank` answers "the top N by final score". An email also has to be honest about weak days: a
pick is a match (kind="match") when its relevance is positive and at least `min_share` of the
subscriber's own reference relevance (the calibrated scale of calibration.score_chunk: the
subscriber's few best papers of the day sit near 1). Only when fewer than N papers of the
subscriber's field are there does the rest of the digest come from the edition's trending
order (kind="trending"), and only papers with a community signal (upvotes, stars, our readers'
likes): a paper nobody voted for is never called trending. Never a banned (delivered, rated or
muted) paper.
"""

from __future__ import annotations

from digest.ranking.explain import trending_reason
from digest.ranking.scoring import RankResult
from digest.ranking.types import Pick


def compose_row(result: RankResult, i: int, *, top_n: int, min_relevance: float) -> list[Pick]:
    """Row i's digest. `min_relevance` is the share of the row's reference relevance a pick
    needs to count as a match (0.25: a quarter as relevant as the subscriber's 3rd best paper
    of the day)."""
    scale = float(result.scale[i])
    matches = [
        p for p in result.picks(i) if p.relevance > 0 and p.relevance * scale >= min_relevance
    ][:top_n]
    if len(matches) >= top_n:
        return matches
    banned_rows = result.batch.banned
    # CSR slice, not banned[i]: scipy row indexing costs ~20 us per call.
    banned = set(banned_rows.indices[banned_rows.indptr[i] : banned_rows.indptr[i + 1]].tolist())
    taken = {result.context.index[p.id] for p in matches}
    picks = list(matches)
    for column in result.context.trend_order:
        if len(picks) >= top_n:
            break
        column = int(column)
        trend = float(result.context.trend[column])
        if trend <= 0:
            break  # trend_order is best first: the rest have no signal either
        if column in banned or column in taken:
            continue
        paper = result.context.candidates[column]
        why = trending_reason(paper)
        if why is None:
            continue
        picks.append(Pick(paper.id, trend, 0.0, trend, why, kind="trending"))
    return picks
