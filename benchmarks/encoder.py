"""The sentence encoder's speed (numpy all-MiniLM-L6-v2) against its own GEMM floor, same run.

Embeds N real abstracts (title + abstract, as papers are embedded) several times and prints
the median texts a second. The floor is the time of the encoder's dense layers alone: the
same four products a layer (QKV, attention output, FFN up and down) on the same token counts,
with nothing else (no attention scores, softmax, GELU or layer norm). The ratio says how far
the whole encoder is from what BLAS alone would take.

    python benchmarks/encoder.py [PAPERS.jsonl] [--texts 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from digest.ranking.minilm import BATCH, MAX_TOKENS, MiniLM

from ranking_quality import DEFAULT, FIXTURE  # the sample's places, named once


def texts_of(path: Path, n: int) -> list[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]
    return [f"{r['title']}. {r['abstract']}".strip() for r in rows[:n]]


def gemm_floor(model: MiniLM, texts: list[str]) -> float:
    """Seconds of the dense layers alone, batch by batch as `embed` pads them."""
    lengths = sorted(min(len(e.ids), MAX_TOKENS) for e in model.tokenizer.encode_batch(texts))
    started = time.perf_counter()
    for start in range(0, len(lengths), BATCH):
        rows = lengths[start : start + BATCH]
        x = np.ones((len(rows) * max(rows), model.word.shape[1]), dtype=np.float32)
        for qkv, _, out_w, _, _, up_w, _, down_w, _, _ in model.blocks:
            x @ qkv
            x @ out_w
            (x @ up_w) @ down_w
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "papers", nargs="?", type=Path, default=DEFAULT if DEFAULT.exists() else FIXTURE
    )
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    texts = texts_of(args.papers, args.texts)
    model = MiniLM()
    model.embed(texts[:BATCH])  # warm: first BLAS calls, page-ins of the weights
    whole, floor = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        model.embed(texts)
        whole.append(time.perf_counter() - started)
        floor.append(gemm_floor(model, texts))
    w, f = statistics.median(whole), statistics.median(floor)
    tokens = sum(min(len(e.ids), MAX_TOKENS) for e in model.tokenizer.encode_batch(texts))
    print(
        f"{len(texts)} texts, {tokens / len(texts):.0f} tokens each on average, "
        f"{args.rounds} rounds"
    )
    print(
        f"encoder: {w:.2f} s median ({min(whole):.2f}-{max(whole):.2f}), "
        f"{len(texts) / w:.1f} texts/s, {1000 * w / len(texts):.0f} ms a text"
    )
    print(f"GEMM floor (dense layers alone): {f:.2f} s median; encoder / floor = {w / f:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
