"""Time zones a subscriber may choose: names of the IANA zone database, never pseudo-zones.

`available_timezones()` also lists files that are not places ("Factory", "localtime",
"posixrules", the posix/ and right/ trees), and ZoneInfo loads some of them happily; a
subscriber in "Factory" would get digests at a meaningless hour.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PSEUDO_ZONES = frozenset({"Factory", "localtime", "posixrules", "leapseconds"})
PSEUDO_PREFIXES = ("posix/", "right/", "SystemV/")


@lru_cache(maxsize=1)
def listed_zones() -> tuple[str, ...]:
    """The zones to offer in a list: one per place (the database's zone.tab), and UTC."""
    table = resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    names = {
        line.split("\t")[2] for line in table.splitlines() if line and not line.startswith("#")
    }
    return ("UTC", *sorted(names))


def check_zone(name: str) -> str:
    """`name` if it is a zone of the database (aliases such as US/Eastern included), else a
    ValueError saying what is expected."""
    name = name.strip()
    problem = f"unknown time zone {name!r}: expected an IANA name such as Europe/Paris or UTC"
    if not name or name in PSEUDO_ZONES or name.startswith(PSEUDO_PREFIXES):
        raise ValueError(problem)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(problem) from None
    return name


def is_zone(name: str) -> bool:
    try:
        check_zone(name)
    except ValueError:
        return False
    return True
