"""Feed states: per source, the conditional-GET validators and the last fetch's outcome."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from digest.models import FeedState


def feed_state(session: Session, source: str) -> FeedState | None:
    """The state row of one source, or None before its first fetch."""
    return session.exec(select(FeedState).where(FeedState.source == source)).first()


def validators(session: Session, source: str) -> tuple[str | None, str | None]:
    """The (ETag, Last-Modified) to send with the source's next conditional GET."""
    state = feed_state(session, source)
    return (state.etag, state.last_modified) if state else (None, None)


def record_fetch(
    session: Session,
    source: str,
    *,
    now: datetime,
    status: str,
    error: str | None,
    fetched: int,
    new: int,
    updated: int,
    succeeded: bool,
    url: str | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FeedState:
    """Write one fetch's outcome; validators given as None keep the stored ones."""
    state = feed_state(session, source)
    if state is None:
        state = FeedState(source=source, url=url or "")
        session.add(state)
    if url:
        state.url = url
    if etag is not None:
        state.etag = etag
    if last_modified is not None:
        state.last_modified = last_modified
    state.last_fetch_at = now
    state.last_status = status
    state.last_error = error
    state.fetched = fetched
    state.new = new
    state.updated = updated
    if succeeded:
        state.last_success_at = now
    session.flush()
    return state


def states_of(session: Session, sources: Sequence[str]) -> dict[str, FeedState]:
    """The stored state of each of these sources that was ever fetched, by source name."""
    if not sources:
        return {}
    query = select(FeedState).where(col(FeedState.source).in_(list(sources)))
    return {state.source: state for state in session.exec(query)}
