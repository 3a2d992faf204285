"""An edition's state follows its deliveries, and an edition is held when every source failed.

planned (rows waiting, none handled) -> sending (some handled, some open) -> done (every row
handled, none failed) | partly failed (some failed or expired unsent) | expired (none sent before
its window closed); held: every configured source failed since the edition began, so nothing
is sent and the subscribers' windows stay open: the papers go out in their next digest.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from digest.models import Edition
from digest.settings import Settings
from digest.store import deliveries as ledger
from digest.store import editions as edition_store
from digest.store import feeds
from digest.store.uow import Tx
from digest.usecases.ingest import SUCCESSFUL

OPEN = ("pending", "deferred", "claimed")
# States the worker no longer touches once reached.
CLOSED = ("done", "partly failed", "expired")


def status_of(counts: Mapping[str, int], *, held: bool = False) -> str:
    """The edition's state from its rows' states."""
    open_rows = sum(counts.get(s, 0) for s in OPEN)
    if held or counts.get("held", 0):
        return "held"
    handled = sum(n for s, n in counts.items() if s not in OPEN)
    if open_rows:
        return "sending" if handled or counts.get("claimed", 0) else "planned"
    if not handled:
        return "planned"
    lost = counts.get("failed", 0) + counts.get("expired", 0)
    if not lost:
        return "done"
    return "partly failed" if counts.get("sent", 0) else "expired"


def every_source_failed(tx: Tx, settings: Settings, *, since: datetime) -> str | None:
    """The hold note when every enabled source's last fetch failed and none succeeded since
    `since` (the edition's start); None otherwise, also when a source was never fetched."""
    names = [s.name for s in settings.sources if s.enabled]
    if not names:
        return None
    states = feeds.states_of(tx, names)
    failures = []
    for name in names:
        state = states.get(name)
        if state is None or state.last_status in SUCCESSFUL or state.last_fetch_at is None:
            return None
        if state.last_success_at is not None and state.last_success_at >= since:
            return None
        failures.append(f"{name}: {state.last_error or state.last_status}")
    return "held: every source failed (" + "; ".join(failures) + ")"


def refresh(tx: Tx, edition: Edition) -> str:
    """Write the state the edition's rows give it (a held edition stays held); returns it."""
    counts = ledger.state_counts(tx, edition.id)
    status = status_of(counts, held=edition.status == "held" and bool(edition.note))
    if status != edition.status:
        edition_store.set_status(tx, edition.id, status)
        edition.status = status
    return status


def check_hold(tx: Tx, settings: Settings, edition: Edition, *, since: datetime) -> str:
    """Hold the edition while every source is failing, release it when one is back; returns
    the hold note or ""."""
    note = every_source_failed(tx, settings, since=since)
    if note:
        edition_store.hold_open_rows(tx, edition.id, note=note)
        edition.status, edition.note = "held", note
        return note
    if edition.status == "held":
        edition_store.release_held_rows(tx, edition.id)
        edition.note = None
        edition.status = "planned"
        refresh(tx, edition)
    return ""


def expire_past(tx: Tx, *, now: datetime) -> list[tuple[Edition, int]]:
    """Expire every edition past its send_by: (edition, rows expired) for each one closed now.

    Stale news is not sent late (listmonk #1801): a worker that comes back after the next
    edition has started closes the old one instead of mailing it.
    """
    closed = []
    for edition in edition_store.editions_past_send_by(tx, now=now):
        rows = ledger.expire_open(tx, edition.id)
        # The state follows the rows: all sent is "done", some lost "partly failed"; an edition
        # with no row at all stays "expired".
        if ledger.state_counts(tx, edition.id):
            edition.status = "expired"
            refresh(tx, edition)
        closed.append((edition, rows))
    return closed
