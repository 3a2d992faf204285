"""Feed states as the editions read them: each source's last fetch and last success."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from digest.models import FeedState


def states_of(session: Session, sources: Sequence[str]) -> dict[str, FeedState]:
    """The stored state of each of these sources that was ever fetched, by source name."""
    if not sources:
        return {}
    query = select(FeedState).where(col(FeedState.source).in_(list(sources)))
    return {state.source: state for state in session.exec(query)}
