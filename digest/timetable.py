"""When an edition runs and when each subscriber is due in it. Pure: no I/O, no clock reads.

An edition covers a fixed UTC window: it starts at `edition_hour` UTC on its date and ends (its
`send_by`) when the next one starts, so the windows tile time without gaps or overlaps. Each
subscriber has one *delivery moment* per local day (their local date at `delivery_hour`, in their
IANA zone); they are due in the edition whose window holds that moment, once it has come.

Why moments rather than "the local hour has come": a window starts at the same UTC instant for
everyone, so for New York it starts at 21:00 or 22:00 local. "local hour >= 7" is already true
then, and a subscriber would get the next edition at 22:00 the evening before: two digests that
local day. A moment belongs to exactly one window, so each local day yields at most one delivery.

DST: a moment in the spring gap (02:30 on 2026-03-29 in Berlin) resolves to the instant an
hour later by wall clock, and a moment in the autumn fold takes its first occurrence
(zoneinfo's fold=0), so every local day has exactly one moment.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from digest.models import Subscriber

DAY = timedelta(days=1)


def edition_start(edition_date: date, edition_hour: int) -> datetime:
    """The UTC instant the edition of this date starts."""
    return datetime.combine(edition_date, time(edition_hour), tzinfo=UTC)


def edition_window(edition_date: date, edition_hour: int) -> tuple[datetime, datetime]:
    """(start, send_by) of an edition; send_by is the start of the next day's edition."""
    start = edition_start(edition_date, edition_hour)
    return start, start + DAY


def edition_date_at(now: datetime, edition_hour: int) -> date:
    """The date of the edition whose window holds `now` (before edition_hour: yesterday's)."""
    return (now.astimezone(UTC) - timedelta(hours=edition_hour)).date()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        # A bad zone in the row must not stop the edition; UTC is the documented fallback.
        return ZoneInfo("UTC")


def delivery_moment(subscriber: Subscriber, local_date: date) -> datetime:
    """The UTC instant of the subscriber's delivery hour on that local date."""
    local = datetime.combine(
        local_date, time(subscriber.delivery_hour), tzinfo=_zone(subscriber.timezone)
    )
    # Round-trip through UTC: a wall time in the spring gap becomes a real instant.
    return local.astimezone(UTC)


def is_due(subscriber: Subscriber, *, now: datetime) -> bool:
    """True once the subscriber's local delivery hour has come today (and today is a send day)."""
    try:
        zone = ZoneInfo(subscriber.timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    if subscriber.frequency == "paused":
        return False
    if subscriber.frequency == "weekdays" and local.weekday() >= 5:
        return False
    if subscriber.frequency == "weekly" and local.weekday() != subscriber.weekly_day:
        return False
    return local.hour >= subscriber.delivery_hour


def due_in_window(subscriber: Subscriber, *, start: datetime, now: datetime) -> bool:
    """True when one of the subscriber's delivery moments lies in [start, now].

    Only today's and yesterday's local dates can hold such a moment, since a window is 24 h.
    Frequency (daily, weekdays, weekly, paused) is judged by `is_due` at the moment
    itself, so the weekday is the subscriber's local weekday at their delivery hour.
    """
    today = now.astimezone(_zone(subscriber.timezone)).date()
    for local_date in (today, today - DAY):
        moment = delivery_moment(subscriber, local_date)
        if start <= moment <= now and is_due(subscriber, now=moment):
            return True
    return False
