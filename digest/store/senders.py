"""Live senders: who holds claims, whether that process still lives, and whose claims wait.

A sender registers a row and renews its heartbeat while it runs. Its claims are its own while
it beats; once it stops (kill -9 included) they are taken over: at once when the holder ran on
this host and its process is gone, otherwise when its heartbeat is older than the TTL.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from digest.models import Delivery, SendingProcess


@dataclass(frozen=True)
class HeldClaims:
    """Rows of an edition claimed by senders that still live: who, how many, free by when."""

    count: int
    holders: tuple[str, ...]
    free_by: datetime | None


def register(session: Session, *, name: str, host: str, pid: int, now: datetime) -> None:
    dialect = session.get_bind().dialect.name
    maker = pg_insert if dialect == "postgresql" else sqlite_insert
    values = {"name": name, "host": host, "pid": pid, "started_at": now, "heartbeat_at": now}
    session.execute(
        maker(SendingProcess)
        .values(**values)
        .on_conflict_do_update(index_elements=["name"], set_={"heartbeat_at": now})
    )
    session.commit()


def beat(session: Session, *, name: str, now: datetime) -> None:
    session.execute(
        update(SendingProcess).where(SendingProcess.name == name).values(heartbeat_at=now)
    )
    session.commit()


def unregister(session: Session, *, name: str) -> None:
    session.execute(delete(SendingProcess).where(SendingProcess.name == name))
    session.commit()


def this_host() -> str:
    """This machine as senders record it: host name and kernel boot id, so that another machine
    of the same name, or this one after a reboot, never has its process ids checked here."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = ""
    name = socket.gethostname()
    return f"{name}/{boot}" if boot else name


def process_gone(pid: int) -> bool:
    """True when no process `pid` runs on this host (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def _alive(row: SendingProcess | None, *, host: str, now: datetime, ttl_s: float) -> bool:
    if row is None:
        return False  # claimed by a sender that never registered (or unregistered): not live
    if row.host == host and process_gone(row.pid):
        return False
    return row.heartbeat_at >= now - timedelta(seconds=ttl_s)


def holders(session: Session, edition_id: int) -> dict[str, int]:
    """Who holds claimed rows of this edition and how many (walks claimed rows only)."""
    rows = session.exec(
        select(Delivery.claimed_by, func.count())
        .where(Delivery.edition_id == edition_id, Delivery.state == "claimed")
        .group_by(Delivery.claimed_by)
    )
    return {name or "": count for name, count in rows}


def _rows(session: Session, names: Iterable[str]) -> dict[str, SendingProcess]:
    wanted = [n for n in names if n]
    if not wanted:
        return {}
    query = select(SendingProcess).where(col(SendingProcess.name).in_(wanted))
    return {row.name: row for row in session.exec(query)}


def takeable(
    session: Session, *, edition_id: int, me: str, host: str, now: datetime, ttl_s: float
) -> list[str]:
    """Holders of this edition's claims that are no longer alive: their rows may be claimed."""
    held = holders(session, edition_id)
    rows = _rows(session, held)
    return [
        name
        for name in held
        if name != me and not _alive(rows.get(name), host=host, now=now, ttl_s=ttl_s)
    ]


def held_by_others(
    session: Session, *, edition_id: int, me: str, host: str, now: datetime, ttl_s: float
) -> HeldClaims:
    """Claims of live senders other than `me`, and when they fall free if those stop beating."""
    held = {name: n for name, n in holders(session, edition_id).items() if name != me}
    rows = _rows(session, held)
    live = {
        name: n
        for name, n in held.items()
        if _alive(rows.get(name), host=host, now=now, ttl_s=ttl_s)
    }
    if not live:
        return HeldClaims(0, (), None)
    free_by = max(rows[name].heartbeat_at for name in live) + timedelta(seconds=ttl_s)
    return HeldClaims(sum(live.values()), tuple(sorted(live)), free_by)
