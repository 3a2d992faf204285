"""Use case: import a subscriber list from CSV, fast enough for a list of 100,000 or more.

Rows are parsed and validated in one pass (address rules of email-validator, domains checked
once each: addresses.py; each distinct timezone looked up once) and written in batches, one
transaction per batch (store/bulk_subscribers.py). Bad rows get one line each and are skipped;
a batch that fails is rolled back as a whole and reported, the batches before it stay.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine
from sqlmodel import Session

from digest.addresses import normalise_address
from digest.store.admin import ImportReport, ImportRow
from digest.store.bulk_subscribers import add_batch

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
BATCH_ROWS = 5_000
_SEPARATORS = re.compile(r"[\s,;]+")
_HOURS = {str(h): h for h in range(24)} | {f"{h:02d}": h for h in range(10)}


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


def read_import_csv(path: Path) -> tuple[list[ImportRow], list[str]]:
    """(valid rows, one error line per bad row) of a subscriber CSV; raises ValueError when the
    file as a whole is unusable (missing columns, unknown columns, not UTF-8)."""
    rows: list[ImportRow] = []
    errors: list[str] = []
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = [h.strip().lower() for h in reader.fieldnames or []]
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        unknown = [c for c in header if c not in IMPORT_COLUMNS]
        if unknown:
            raise ValueError(f"{path}: unknown column(s) {', '.join(unknown)}")
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


def _batches(rows: Sequence[ImportRow], size: int) -> Iterator[Sequence[ImportRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def import_subscribers(
    engine: Engine,
    rows: Sequence[ImportRow],
    *,
    confirmed: bool,
    now: datetime,
    batch_rows: int = BATCH_ROWS,
) -> ImportReport:
    """Add the rows not yet on the list, one transaction per batch; present and suppressed
    addresses are left alone. Idempotent: importing the same rows twice adds nothing."""
    report = ImportReport()
    seen: set[str] = set()
    for batch in _batches(rows, batch_rows):
        fresh = []
        for row in batch:
            if row.email in seen:
                report.present += 1  # a repeat within the file
            else:
                seen.add(row.email)
                fresh.append(row)
        with Session(engine) as session:
            added, present, suppressed = add_batch(session, fresh, confirmed=confirmed, now=now)
            session.commit()
        report.added += added
        report.present += present
        report.suppressed += suppressed
    return report
