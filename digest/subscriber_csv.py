"""The subscriber list as CSV: the columns `digest subscribers import` reads and `export` writes.

Pure: it parses the lines it is given and formats the records it is given; opening the file
and writing to the database are the caller's. Rows are validated in one pass (address rules of
email-validator, domains checked once each: addresses.py; each distinct timezone looked up
once); a bad row gets one line and is skipped, the rest are kept.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.addresses import normalise_address

IMPORT_COLUMNS = (
    "email",
    "interests",
    "categories",
    "seed_papers",
    "timezone",
    "hour",
    "authors",
)
REQUIRED_COLUMNS = ("email", "interests")
_SEPARATORS = re.compile(r"[\s,;]+")
_HOURS = {str(h): h for h in range(24)} | {f"{h:02d}": h for h in range(10)}


@dataclass(frozen=True)
class ImportRow:
    """One validated CSV row; `line` is its line number in the file (the header is line 1)."""

    line: int
    email: str
    interests: str
    categories: tuple[str, ...] = ()
    seed_papers: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    timezone: str = "UTC"
    hour: int = 7


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(p for p in _SEPARATORS.split(value) if p) if value else ()


def _names(value: str | None) -> tuple[str, ...]:
    """Author names separated by semicolons (a name may hold a comma: "Baeva, Anna")."""
    names = (" ".join(p.split()) for p in (value or "").split(";"))
    return tuple(dict.fromkeys(n for n in names if n))


@lru_cache(maxsize=1024)
def _timezone_known(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _hour(text: str) -> int:
    hour = _HOURS.get(text)
    if hour is None:
        if not text.isdigit() or not 0 <= int(text) <= 23:
            raise ValueError(f"hour {text!r}: expected 0-23")
        hour = int(text)
    return hour


def import_row(line: int, record: dict[str, Any]) -> ImportRow:
    """One CSV record as a validated row, or a ValueError saying what is wrong with it."""
    if None in record:
        raise ValueError("more fields than columns")
    email = normalise_address(record.get("email") or "")
    timezone = (record.get("timezone") or "").strip() or "UTC"
    if not _timezone_known(timezone):
        raise ValueError(f"unknown timezone {timezone!r}")
    hour = _hour((record.get("hour") or "").strip() or "7")
    return ImportRow(
        line=line,
        email=email,
        interests=" ".join((record.get("interests") or "").split())[:2000],
        categories=_split(record.get("categories")),
        seed_papers=_split(record.get("seed_papers")),
        authors=_names(record.get("authors")),
        timezone=timezone,
        hour=hour,
    )


def parse_rows(lines: Iterable[str], name: str) -> tuple[list[ImportRow], list[str]]:
    """(valid rows, one error line per bad row) of a subscriber CSV.

    `lines` may be a text file being decoded as it is read: a decoding error in the header
    refuses the file, one further on stops there and keeps the rows before it. Raises
    ValueError, prefixed with `name`, when the file as a whole is unusable (missing or unknown
    columns, not UTF-8).
    """
    rows: list[ImportRow] = []
    errors: list[str] = []
    reader = csv.DictReader(lines)
    try:
        header = [h.strip().lower() for h in reader.fieldnames or []]
    except UnicodeDecodeError:
        raise ValueError(f"{name}: not UTF-8 text") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{name}: missing column(s) {', '.join(missing)}")
    unknown = [c for c in header if c not in IMPORT_COLUMNS]
    if unknown:
        raise ValueError(f"{name}: unknown column(s) {', '.join(unknown)}")
    reader.fieldnames = header
    try:
        for record in reader:
            line = reader.line_num
            try:
                rows.append(import_row(line, record))
            except ValueError as exc:
                errors.append(f"line {line}: {exc}")
    except (UnicodeDecodeError, csv.Error) as exc:
        errors.append(f"line {reader.line_num}: unreadable ({type(exc).__name__}); stopped")
    return rows, errors


def export_record(subscriber: Any) -> dict[str, Any]:
    """A stored subscriber as one CSV record in the columns import reads back."""
    return {
        "email": subscriber.email,
        "interests": subscriber.interests,
        "categories": " ".join(subscriber.categories),
        "seed_papers": " ".join(subscriber.seed_papers),
        "timezone": subscriber.timezone,
        "hour": subscriber.delivery_hour,
        "authors": "; ".join(subscriber.authors),
    }


def format_rows(records: Iterable[Mapping[str, Any]]) -> str:
    """The records as CSV text with a header line, ready to be written as is."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=IMPORT_COLUMNS)
    writer.writeheader()
    writer.writerows(records)
    return text.getvalue()
