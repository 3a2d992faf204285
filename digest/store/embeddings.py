"""Sentence embeddings of papers and of free texts, stored per model.

Raw bytes in and out: encoding vectors is digest.ranking.semantic's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from digest.models import PaperEmbedding, TextEmbedding
from digest.store.papers import BATCH_ROWS, insert_statement


def _upsert(
    session: Session, table: Any, rows: list[dict[str, Any]], keys: list[str], update: Any
) -> None:
    statement = insert_statement(session, table)
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
