"""What goes into an email: matches above a minimum relevance, then labelled trending fill.

`rank` answers "the top N by final score". An email also has to be honest about weak days:
only picks whose relevance reaches `min_relevance` are called matches (kind="match"); when
fewer than N pass, the rest of the digest is the edition's trending order (kind="trending"),
never a banned (delivered, rated or muted) paper.
"""

from __future__ import annotations

from digest.ranking.scoring import RankResult
from digest.ranking.types import Pick


def _trending_why(result: RankResult, column: int) -> str:
    paper = result.context.candidates[column]
    if paper.upvotes:
        return f"trending: {paper.upvotes} upvotes"
    if paper.liked_by:
        return f"trending: liked by {paper.liked_by} readers"
    return "trending today"


def compose_row(result: RankResult, i: int, *, top_n: int, min_relevance: float) -> list[Pick]:
    matches = [p for p in result.picks(i) if p.relevance >= min_relevance][:top_n]
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
        if column in banned or column in taken:
            continue
        trend = float(result.context.trend[column])
        picks.append(
            Pick(
                result.context.candidates[column].id,
                trend,
                0.0,
                trend,
                _trending_why(result, column),
                kind="trending",
            )
        )
    return picks
