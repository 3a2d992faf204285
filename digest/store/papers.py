"""Paper queries: merge records from any source into one row per paper, and read them back.

`upsert_papers` merges in Python (union of lists, best text, latest votes) and writes with a
dialect-specific INSERT ... ON CONFLICT: a batch is a few statements on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from digest.models import Paper, PaperEmbedding, TextEmbedding
from digest.sources.base import PaperRecord

ANNOUNCED = ("new", "cross")
REPLACEMENTS = ("replace", "replace-cross")
# Rows created by seed-paper lookups are reference data, never announced as today's papers.
LOOKUP = "lookup"
# The (upvotes_prev, upvotes_at) baseline moves at most once per window, so the velocity
# (upvotes - upvotes_prev) / (now - upvotes_at) is measured over hours, not between two runs.
VELOCITY_WINDOW = timedelta(hours=24)
# Keys per IN (...) lookup; SQLite allows 32,766 bound parameters per statement.
BATCH_ROWS = 500
_TABLE = Paper.__table__  # type: ignore[attr-defined]
_MUTABLE = [c.name for c in _TABLE.columns if c.name not in ("id", "key")]


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


def _merge_records(first: PaperRecord, other: PaperRecord) -> PaperRecord:
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


def _row_from_record(record: PaperRecord, sources: list[str], now: datetime) -> dict[str, Any]:
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


def _merge_into_row(
    stored: Paper, record: PaperRecord, sources: list[str], now: datetime
) -> dict[str, Any]:
    """The stored row updated with `record`: never loses stored text, unions lists, moves votes."""
    row = {name: getattr(stored, name) for name in _MUTABLE}
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
    return any(getattr(stored, name) != row[name] for name in _MUTABLE if name not in ignore)


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        insert_fn: Any = postgresql.insert
    elif dialect == "sqlite":
        insert_fn = sqlite.insert
    else:  # pragma: no cover - the service supports SQLite and PostgreSQL only
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    statement = insert_fn(_TABLE)
    # first_seen is never overwritten: a paper's age is when we first saw it.
    updates = {name: statement.excluded[name] for name in _MUTABLE if name != "first_seen"}
    statement = statement.on_conflict_do_update(index_elements=["key"], set_=updates)
    # executemany: one cached compiled statement, batched by SQLAlchemy's insertmanyvalues;
    # a literal multi-row VALUES would be recompiled per batch (3 s per 2,000 rows).
    # Every row carries every column, so the executemany parameter sets are uniform.
    session.connection().execute(statement, rows)


def _valid(record: PaperRecord) -> bool:
    return bool(record.key and record.key.strip() and record.title and len(record.key) <= 300)


def upsert_papers(
    session: Session, records: Iterable[PaperRecord], *, now: datetime
) -> UpsertCounts:
    """Merge `records` into the paper table; count new, changed, unchanged and skipped."""
    merged: dict[str, PaperRecord] = {}
    sources: dict[str, list[str]] = {}
    skipped = 0
    for record in records:
        if not _valid(record):
            skipped += 1
            continue
        if record.key in merged:
            merged[record.key] = _merge_records(merged[record.key], record)
        else:
            merged[record.key] = record
        sources[record.key] = _union(sources.get(record.key, []), [record.source])
    if not merged:
        return UpsertCounts(skipped=skipped)
    keys = list(merged)
    stored: dict[str, Paper] = {}
    for start in range(0, len(keys), BATCH_ROWS):
        chunk = keys[start : start + BATCH_ROWS]
        query = select(Paper).where(Paper.key.in_(chunk))  # type: ignore[attr-defined]
        for paper in session.exec(query).all():
            stored[paper.key] = paper
    rows: list[dict[str, Any]] = []
    new = changed = 0
    for key, record in merged.items():
        existing = stored.get(key)
        if existing is None:
            # A replacement we never saw is a new row too, though no edition will announce it.
            row = _row_from_record(record, sources[key], now)
            new += 1
        else:
            row = _merge_into_row(existing, record, sources[key], now)
            row["key"] = key
            row["first_seen"] = row.get("first_seen") or existing.first_seen
            if _changed(existing, row) or (
                record.upvotes is not None and record.upvotes != existing.upvotes
            ):
                changed += 1
        rows.append(row)
    _insert(session, rows)
    # The ORM objects loaded above are now stale; expire them so readers see the new values.
    for paper in stored.values():
        session.expire(paper)
    unchanged = len(merged) - new - changed
    return UpsertCounts(new=new, changed=changed, unchanged=unchanged, skipped=skipped)


def recent_papers(session: Session, *, since: datetime) -> list[Paper]:
    """Papers first seen at or after `since` that were announced as new or cross-listed."""
    statement = (
        select(Paper)
        .where(Paper.first_seen >= since, Paper.announce.in_(ANNOUNCED))  # type: ignore[attr-defined]
        .order_by(Paper.first_seen, Paper.key)
    )
    return list(session.exec(statement).all())


def papers_by_keys(session: Session, keys: Sequence[str]) -> dict[str, Paper]:
    """Stored papers by key (arXiv ids may carry a version or prefix); missing keys are absent."""
    from digest.sources.ids import normalize_arxiv_id

    wanted = {normalize_arxiv_id(key) or key: key for key in keys}
    found: dict[str, Paper] = {}
    names = list(wanted)
    for start in range(0, len(names), BATCH_ROWS):
        chunk = names[start : start + BATCH_ROWS]
        query = select(Paper).where(Paper.key.in_(chunk))  # type: ignore[attr-defined]
        for paper in session.exec(query).all():
            found[paper.key] = paper
    return found


def list_papers(session: Session, *, since: datetime | None = None) -> list[Paper]:
    """Every stored paper (first seen at or after `since` when given), newest first."""
    statement = select(Paper)
    if since is not None:
        statement = statement.where(Paper.first_seen >= since)
    statement = statement.order_by(Paper.first_seen.desc(), Paper.key)  # type: ignore[attr-defined]
    return list(session.exec(statement).all())


def get_paper(session: Session, key: str) -> Paper | None:
    """One paper by key, arXiv id (any version or link form), or None."""
    from digest.sources.ids import normalize_arxiv_id

    wanted = normalize_arxiv_id(key) or key.strip()
    return session.exec(select(Paper).where(Paper.key == wanted)).first()


# ---------------------------------------------------------------- sentence embeddings
# Raw bytes in and out: encoding vectors is digest.ranking.semantic's business.


def _upsert(session: Session, table: Any, rows: list[dict[str, Any]], keys: list[str], update):
    dialect = session.get_bind().dialect.name
    insert_fn: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert_fn(table)
    if update:
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_={name: statement.excluded[name] for name in update}
        )
    else:
        # Two workers embedding the same text at once store the same vector: first one wins.
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    session.connection().execute(statement, rows)


def paper_embeddings(
    session: Session, keys: Sequence[str], *, model: str
) -> dict[str, tuple[str, bytes]]:
    """Stored {paper key: (text hash, vector bytes)} of these papers for this model."""
    found: dict[str, tuple[str, bytes]] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), BATCH_ROWS):
        chunk = unique[start : start + BATCH_ROWS]
        query = select(
            PaperEmbedding.paper_key, PaperEmbedding.text_hash, PaperEmbedding.vector
        ).where(
            PaperEmbedding.model == model,
            PaperEmbedding.paper_key.in_(chunk),  # type: ignore[attr-defined]
        )
        for key, text_hash, vector in session.exec(query).all():
            found[key] = (text_hash, bytes(vector))
    return found


def save_paper_embeddings(
    session: Session, rows: Sequence[tuple[str, str, bytes]], *, model: str, now: datetime
) -> None:
    """Store (paper key, text hash, vector bytes) rows, replacing a paper's older vector."""
    if rows:
        values = [
            {"paper_key": k, "model": model, "text_hash": h, "vector": v, "created_at": now}
            for k, h, v in rows
        ]
        _upsert(
            session,
            PaperEmbedding.__table__,  # type: ignore[attr-defined]
            values,
            ["paper_key", "model"],
            ["text_hash", "vector", "created_at"],
        )


def text_embeddings(session: Session, hashes: Sequence[str], *, model: str) -> dict[str, bytes]:
    """Stored {text hash: vector bytes} for these hashes and this model."""
    found: dict[str, bytes] = {}
    unique = list(dict.fromkeys(hashes))
    for start in range(0, len(unique), BATCH_ROWS):
        chunk = unique[start : start + BATCH_ROWS]
        query = select(TextEmbedding.text_hash, TextEmbedding.vector).where(
            TextEmbedding.model == model,
            TextEmbedding.text_hash.in_(chunk),  # type: ignore[attr-defined]
        )
        for text_hash, vector in session.exec(query).all():
            found[text_hash] = bytes(vector)
    return found


def save_text_embeddings(
    session: Session, rows: Sequence[tuple[str, bytes]], *, model: str, now: datetime
) -> None:
    if rows:
        values = [{"text_hash": h, "model": model, "vector": v, "created_at": now} for h, v in rows]
        _upsert(
            session,
            TextEmbedding.__table__,  # type: ignore[attr-defined]
            values,
            ["text_hash", "model"],
            None,
        )


@dataclass
class SessionEmbeddings:
    """The embedding store of digest.ranking.semantic over one session (the caller commits)."""

    session: Session
    now: datetime

    def paper_vectors(self, keys: Sequence[str], model: str) -> dict[str, tuple[str, bytes]]:
        return paper_embeddings(self.session, keys, model=model)

    def save_paper_vectors(self, rows: Sequence[tuple[str, str, bytes]], model: str) -> None:
        save_paper_embeddings(self.session, rows, model=model, now=self.now)

    def text_vectors(self, hashes: Sequence[str], model: str) -> dict[str, bytes]:
        return text_embeddings(self.session, hashes, model=model)

    def save_text_vectors(self, rows: Sequence[tuple[str, bytes]], model: str) -> None:
        save_text_embeddings(self.session, rows, model=model, now=self.now)
