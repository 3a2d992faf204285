"""Lifting, by hand, the pause sending takes when complaints run high (usecases/bounces.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from digest.usecases.bounces import resume_sending

if TYPE_CHECKING:
    from digest.bootstrap import Services


def resume(services: Services) -> int:
    """Close every open pause; returns how many were open (0: sending was not paused)."""
    with services.transaction() as tx:
        return resume_sending(tx, now=services.clock())
