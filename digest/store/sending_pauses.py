"""Pauses of all sending (a complaint rate too high): open until an operator resumes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from digest.models import SendingPause, utcnow


def sending_paused(session: Session) -> bool:
    """True while a pause is open; editions must send nothing then."""
    query = select(SendingPause.id).where(col(SendingPause.resumed_at).is_(None))
    return session.exec(query).first() is not None


def pause_reason(session: Session) -> str | None:
    row = session.exec(select(SendingPause).where(col(SendingPause.resumed_at).is_(None))).first()
    return row.reason if row else None


def pause(session: Session, reason: str, *, now: datetime) -> None:
    """Open a pause. The caller commits."""
    session.add(SendingPause(reason=reason, paused_at=now))


def resume_sending(session: Session, *, now: datetime | None = None) -> int:
    """Close every open pause; returns how many were open. The caller commits."""
    now = now or utcnow()
    rows = session.exec(select(SendingPause).where(col(SendingPause.resumed_at).is_(None))).all()
    for row in rows:
        row.resumed_at = now
        session.add(row)
    return len(rows)


def last_resume(session: Session) -> datetime | None:
    return session.exec(select(func.max(SendingPause.resumed_at))).one()
