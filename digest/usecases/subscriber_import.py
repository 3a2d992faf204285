"""Use case: import a subscriber list from CSV, fast enough for a list of 100,000 or more.

The file is parsed as it is read (digest/subscriber_csv.py) and the rows written in batches,
one transaction per batch (store/bulk_subscribers.py). Bad rows get one line each and are
skipped; a batch that fails is rolled back as a whole and reported, the batches before it stay.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digest.store.bulk_subscribers import EXPORT_STATUSES, add_batch, export_subscribers
from digest.subscriber_csv import ImportRow, export_record, parse_rows

if TYPE_CHECKING:
    from digest.bootstrap import Services

BATCH_ROWS = 5_000


@dataclass
class ImportReport:
    added: int = 0
    present: int = 0
    suppressed: int = 0


def read_import_csv(path: Path) -> tuple[list[ImportRow], list[str]]:
    """(valid rows, one error line per bad row) of a subscriber CSV; raises ValueError when the
    file as a whole is unusable (unreadable, missing columns, unknown columns, not UTF-8)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    with handle:
        return parse_rows(handle, str(path))


def _batches(rows: Sequence[ImportRow], size: int) -> Iterator[Sequence[ImportRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def import_subscribers(
    services: Services,
    rows: Sequence[ImportRow],
    *,
    confirmed: bool,
    now: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
) -> ImportReport:
    """Add the rows not yet on the list, one transaction per batch; present and suppressed
    addresses are left alone. Idempotent: importing the same rows twice adds nothing."""
    now = now or services.clock()
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
        with services.transaction() as tx:
            added, present, suppressed = add_batch(tx, fresh, confirmed=confirmed, now=now)
        report.added += added
        report.present += present
        report.suppressed += suppressed
    return report


def export_list(services: Services, statuses: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The subscribers in these statuses (default: active, paused, pending) as CSV records in
    the columns import reads back."""
    with services.reading() as tx:
        return [export_record(s) for s in export_subscribers(tx, statuses or EXPORT_STATUSES)]
