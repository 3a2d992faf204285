"""Sentence embeddings of papers and interest texts, computed once and kept in a store.

Papers are embedded once per text (stored by paper key, with the text's hash to notice edits),
interest texts once per distinct text (stored by hash). `Embeddings` does that bookkeeping over
an `EmbeddingStore` (the database, see digest.store.embeddings.SessionEmbeddings, or
`MemoryEmbeddings`); the ranking stays free of I/O.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from digest.ranking.encoder import DIMS, MODEL, Encoder, load_encoder
from digest.ranking.types import Candidate


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embedding_text(paper: Candidate) -> str:
    """What a paper's embedding is computed from. The title once: unlike TF-IDF weighting,
    a sentence encoder gains nothing from repeating it, and it costs tokens."""
    return f"{paper.title}. {paper.abstract}".strip()


def to_bytes(vectors: np.ndarray) -> list[bytes]:
    """Rows as little-endian float16 bytes (half of float32's space; cosines move ~1e-3)."""
    return [row.tobytes() for row in np.asarray(vectors, dtype="<f2")]


def from_bytes(blobs: Sequence[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, DIMS), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f2").reshape(len(blobs), -1).astype(np.float32)


class EmbeddingStore(Protocol):
    """Where vectors are kept between editions (bytes as `to_bytes` makes them)."""

    def paper_vectors(self, keys: Sequence[str], model: str) -> dict[str, tuple[str, bytes]]: ...

    def save_paper_vectors(self, rows: Sequence[tuple[str, str, bytes]], model: str) -> None: ...

    def text_vectors(self, hashes: Sequence[str], model: str) -> dict[str, bytes]: ...

    def save_text_vectors(self, rows: Sequence[tuple[str, bytes]], model: str) -> None: ...


class MemoryEmbeddings:
    """An in-process EmbeddingStore: for `digest rank` on a file, benchmarks and tests."""

    def __init__(self) -> None:
        self.papers: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.texts: dict[tuple[str, str], bytes] = {}

    def paper_vectors(self, keys: Sequence[str], model: str) -> dict[str, tuple[str, bytes]]:
        return {k: self.papers[(model, k)] for k in keys if (model, k) in self.papers}

    def save_paper_vectors(self, rows: Sequence[tuple[str, str, bytes]], model: str) -> None:
        self.papers.update({(model, k): (h, v) for k, h, v in rows})

    def text_vectors(self, hashes: Sequence[str], model: str) -> dict[str, bytes]:
        return {h: self.texts[(model, h)] for h in hashes if (model, h) in self.texts}

    def save_text_vectors(self, rows: Sequence[tuple[str, bytes]], model: str) -> None:
        self.texts.update({(model, h): v for h, v in rows})


# Vectors this process computed lately, by (model, text hash): a worker (or a test run) that
# meets the same text in another database, or again before its store has it, reuses them.
_RECENT: dict[tuple[str, str], bytes] = {}
RECENT_MAX = 50_000  # ~40 MB of float16 rows
_recent_lock = threading.Lock()


def _remember(keys: Sequence[tuple[str, str]], blobs: Sequence[bytes]) -> None:
    with _recent_lock:
        _RECENT.update(zip(keys, blobs, strict=True))
        while len(_RECENT) > RECENT_MAX:
            _RECENT.pop(next(iter(_RECENT)))


class Embeddings:
    """Vectors of papers and texts: stored ones reused, missing ones computed once and stored.

    The encoder is loaded only when something is missing, so a send tick whose vectors are all
    stored never imports PyTorch.
    """

    def __init__(
        self,
        store: EmbeddingStore,
        *,
        encoder: Callable[[], Encoder] | None = None,
        model: str = MODEL,
        threads: int = 0,
        text_budget: int | None = None,
    ) -> None:
        self.store = store
        self.model = model
        # New interest texts embedded at most by this object (None: no limit). Turning the
        # backend on for a large list would otherwise stall the first edition for hours
        # (~20 ms a text on 2 cores); texts over the budget get a zero vector (their profile
        # is LSA and likes only) and are embedded by a later run.
        self.text_budget = text_budget
        self._encoder_factory = encoder or (lambda: load_encoder(threads))
        # Only the real model's vectors are shared across this process's stores.
        self._share_recent = encoder is None
        self._encoder: Encoder | None = None
        self.computed = 0  # texts embedded by this object (the rest came from the store)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        """Rows for texts the store lacks: from this process's recent vectors, else computed."""
        keys = [(self.model, text_hash(t)) for t in texts]
        recent = _RECENT if self._share_recent else {}
        todo = [i for i, k in enumerate(keys) if k not in recent]
        out = np.zeros((len(texts), DIMS), dtype=np.float32)
        if todo:
            if self._encoder is None:
                self._encoder = self._encoder_factory()
            self.computed += len(todo)
            fresh = np.asarray(self._encoder.embed([texts[i] for i in todo]), dtype=np.float32)
            if self._share_recent:
                _remember([keys[i] for i in todo], to_bytes(fresh))
            out[todo] = fresh
        computed = set(todo)
        have = [i for i in range(len(texts)) if i not in computed]
        if have:
            out[have] = from_bytes([recent[keys[i]] for i in have])
        return out

    def papers(self, papers: Sequence[Candidate]) -> np.ndarray:
        """(n, 384) float32 rows of these papers, in order."""
        texts = [embedding_text(p) for p in papers]
        hashes = [text_hash(t) for t in texts]
        stored = self.store.paper_vectors([p.id for p in papers], self.model)
        out = np.zeros((len(papers), DIMS), dtype=np.float32)
        have = [i for i, p in enumerate(papers) if stored.get(p.id, ("",))[0] == hashes[i]]
        if have:
            out[have] = from_bytes([stored[papers[i].id][1] for i in have])
        missing = sorted(set(range(len(papers))) - set(have))
        if missing:
            # Each missing text once (a paper listed twice, two keys with the same text).
            first: dict[str, int] = {}
            for i in missing:
                first.setdefault(hashes[i], i)
            unique = list(first.values())
            vectors = self._embed([texts[i] for i in unique])
            # Stored as float16 and read back as such, so a fresh vector and a stored one are
            # the same numbers: rankings do not depend on which edition computed them.
            blobs = to_bytes(vectors)
            by_hash = dict(zip([hashes[i] for i in unique], blobs, strict=True))
            out[missing] = from_bytes([by_hash[hashes[i]] for i in missing])
            rows = {papers[i].id: (hashes[i], by_hash[hashes[i]]) for i in missing}
            self.store.save_paper_vectors([(k, h, v) for k, (h, v) in rows.items()], self.model)
        return out

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 384) float32 rows of these texts (interest texts), looked up by hash."""
        hashes = [text_hash(t.strip()) for t in texts]
        stored = self.store.text_vectors(list(dict.fromkeys(hashes)), self.model)
        missing: dict[str, str] = {}
        for h, t in zip(hashes, texts, strict=True):
            if h not in stored and t.strip():
                missing.setdefault(h, t.strip())
        if self.text_budget is not None:
            allowed = max(0, self.text_budget)
            missing = dict(list(missing.items())[:allowed])
            self.text_budget = allowed - len(missing)
        if missing:
            blobs = to_bytes(self._embed(list(missing.values())))
            fresh = dict(zip(missing, blobs, strict=True))
            self.store.save_text_vectors(list(fresh.items()), self.model)
            stored = {**stored, **fresh}
        zero = np.zeros(DIMS, dtype="<f2").tobytes()
        return from_bytes([stored.get(h, zero) for h in hashes])
