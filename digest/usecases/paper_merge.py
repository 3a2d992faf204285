"""Merge records from any source into one row per paper: the rules, then one write per batch.

The rules are pure (union of lists, best text, latest votes, the velocity baseline); the store
only reads the stored rows and writes the merged ones with one INSERT ... ON CONFLICT, so a
batch is a few statements on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from digest.models import Paper
from digest.sources.base import PaperRecord
from digest.store import papers as paper_store
from digest.store.papers import ANNOUNCED, LOOKUP, MUTABLE_COLUMNS, REPLACEMENTS

if TYPE_CHECKING:
    from digest.store.uow import Tx

# The (upvotes_prev, upvotes_at) baseline moves at most once per window, so the velocity
# (upvotes - upvotes_prev) / (now - upvotes_at) is measured over hours, not between two runs.
VELOCITY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    """Rows created, stored rows whose content changed, stored rows left as they were (only
    last_seen moved), and records not stored (no id or title)."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0


def _union(*lists: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for items in lists for item in items if item))


def _longer(a: str, b: str) -> str:
    return b if len(b) > len(a) else a


def merge_records(first: PaperRecord, other: PaperRecord) -> PaperRecord:
    """Fold two records of the same key (one batch, several feeds) into one."""
    announce = first.announce
    if other.announce == "new" or (other.announce in ANNOUNCED and announce not in ANNOUNCED):
        announce = other.announce
    newer = (other.version or 0) > (first.version or 0)
    return replace(
        first,
        title=(other.title if newer and other.title else first.title) or other.title,
        source=first.source,
        abstract=_longer(first.abstract, other.abstract),
        arxiv_id=first.arxiv_id or other.arxiv_id,
        version=max(first.version or 0, other.version or 0) or None,
        doi=first.doi or other.doi,
        authors=first.authors if len(first.authors) >= len(other.authors) else other.authors,
        categories=tuple(_union(first.categories, other.categories)),
        url=first.url or other.url,
        pdf_url=first.pdf_url or other.pdf_url,
        code_url=other.code_url or first.code_url,
        upvotes=other.upvotes if other.upvotes is not None else first.upvotes,
        github_stars=other.github_stars if other.github_stars is not None else first.github_stars,
        comments=other.comments if other.comments is not None else first.comments,
        ai_summary=first.ai_summary or other.ai_summary,
        organization=first.organization or other.organization,
        published=first.published or other.published,
        announce=announce,
    )


def row_from_record(record: PaperRecord, sources: list[str], now: datetime) -> dict[str, Any]:
    """The row of a paper not stored yet."""
    announce = record.announce
    if announce in REPLACEMENTS:
        # A replacement we never saw announced: keep it, but as "replace" so no edition sends it.
        announce = "replace"
    elif announce not in ANNOUNCED and announce != LOOKUP:
        announce = "new"
    return {
        "key": record.key,
        "arxiv_id": record.arxiv_id,
        "version": record.version,
        "doi": record.doi,
        "title": record.title,
        "abstract": record.abstract,
        "authors": list(record.authors),
        "categories": list(record.categories),
        "url": record.url,
        "pdf_url": record.pdf_url,
        "code_url": record.code_url,
        "upvotes": record.upvotes,
        "upvotes_prev": record.upvotes,
        "upvotes_at": now if record.upvotes is not None else None,
        "github_stars": record.github_stars,
        "comments": record.comments,
        "ai_summary": record.ai_summary,
        "organization": record.organization,
        "published": record.published,
        "sources": sources,
        "announce": announce,
        "first_seen": now,
        "last_seen": now,
    }


def merge_into_row(
    stored: Paper, record: PaperRecord, sources: list[str], now: datetime
) -> dict[str, Any]:
    """The stored row updated with `record`: never loses stored text, unions lists, moves votes."""
    row = {name: getattr(stored, name) for name in MUTABLE_COLUMNS}
    newer = (record.version or 0) > (stored.version or 0)
    row["version"] = max(stored.version or 0, record.version or 0) or None
    row["arxiv_id"] = stored.arxiv_id or record.arxiv_id
    row["doi"] = stored.doi or record.doi
    # A new version may retitle the paper; otherwise the first title stays (no flip-flopping
    # between sources that format it differently).
    row["title"] = (record.title if newer and record.title else stored.title) or record.title
    row["abstract"] = _longer(stored.abstract or "", record.abstract)
    if len(record.authors) > len(stored.authors or []):
        row["authors"] = list(record.authors)
    row["categories"] = _union(stored.categories or [], record.categories)
    row["sources"] = _union(stored.sources or [], sources)
    for name in ("url", "pdf_url", "ai_summary", "organization", "published"):
        row[name] = getattr(stored, name) or getattr(record, name)
    # Repository and counters are live signals: the latest observation wins.
    for name in ("code_url", "github_stars", "comments"):
        value = getattr(record, name)
        if value is not None:
            row[name] = value
    if record.upvotes is not None:
        if stored.upvotes is None or stored.upvotes_at is None:
            row["upvotes_prev"], row["upvotes_at"] = record.upvotes, now
        elif now - stored.upvotes_at >= VELOCITY_WINDOW and record.upvotes != stored.upvotes:
            # Baseline = the previous observation, taken when the row was last seen.
            row["upvotes_prev"], row["upvotes_at"] = stored.upvotes, stored.last_seen
        row["upvotes"] = record.upvotes
    if stored.announce == LOOKUP and record.announce in ANNOUNCED:
        # Looked up as a seed before arXiv announced it: announce it now, as new.
        row["announce"], row["first_seen"] = record.announce, now
    elif stored.announce == "cross" and record.announce == "new":
        row["announce"] = "new"
    row["last_seen"] = now
    return row


def _changed(stored: Paper, row: dict[str, Any]) -> bool:
    ignore = {"last_seen", "upvotes", "upvotes_prev", "upvotes_at", "github_stars", "comments"}
    return any(getattr(stored, name) != row[name] for name in MUTABLE_COLUMNS if name not in ignore)


def _valid(record: PaperRecord) -> bool:
    return bool(record.key and record.key.strip() and record.title and len(record.key) <= 300)


def upsert_papers(tx: Tx, records: Iterable[PaperRecord], *, now: datetime) -> UpsertCounts:
    """Merge `records` into the paper table; count new, changed, unchanged and skipped."""
    merged: dict[str, PaperRecord] = {}
    sources: dict[str, list[str]] = {}
    skipped = 0
    for record in records:
        if not _valid(record):
            skipped += 1
            continue
        if record.key in merged:
            merged[record.key] = merge_records(merged[record.key], record)
        else:
            merged[record.key] = record
        sources[record.key] = _union(sources.get(record.key, []), [record.source])
    if not merged:
        return UpsertCounts(skipped=skipped)
    stored = paper_store.papers_by_keys(tx, list(merged))
    rows: list[dict[str, Any]] = []
    new = changed = 0
    for key, record in merged.items():
        existing = stored.get(key)
        if existing is None:
            # A replacement we never saw is a new row too, though no edition will announce it.
            row = row_from_record(record, sources[key], now)
            new += 1
        else:
            row = merge_into_row(existing, record, sources[key], now)
            row["key"] = key
            row["first_seen"] = row.get("first_seen") or existing.first_seen
            if _changed(existing, row) or (
                record.upvotes is not None and record.upvotes != existing.upvotes
            ):
                changed += 1
        rows.append(row)
    paper_store.write_papers(tx, rows, loaded=stored.values())
    unchanged = len(merged) - new - changed
    return UpsertCounts(new=new, changed=changed, unchanged=unchanged, skipped=skipped)
