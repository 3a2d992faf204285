"""What one send run did: the counts `digest send`, the worker and the demo report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class SendReport:
    """What one send run did; `seconds` is wall time."""

    planned: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    suppressed: int = 0
    skipped: int = 0
    expired: int = 0
    seconds: float = 0.0
    relay_down: bool = False
    relay_trips: int = 0
    paused: bool = False
    # Subscribers whose window held nothing new: no digest (a note if they asked for one).
    nothing_new: int = 0
    notes: int = 0
    # The hold note when every source failed and the edition was held.
    held: str = ""
    status: str = ""
    # Rows other live senders still held when this run ended, and when they fall free.
    claims_held: int = 0
    claims_held_by: tuple[str, ...] = ()
    claims_held_until: datetime | None = None
    # Seconds per phase (claim, rank, render, send, record); record overlaps send.
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0
