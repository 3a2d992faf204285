"""Ranking speed: a whole edition for 100,000 (or --subscribers N) subscribers x 2,000 papers.

Synthesises, by resampling the sample abstracts: a 50,000-paper window (the text model is
fitted on it, timed), 2,000 candidates with categories and upvotes, and N subscribers with
mixed profiles (40 % interest text only, 40 % 5-50 likes from the window plus a few delivered
papers, 20 % categories only). Times each stage of the edition and reports peak RSS, then a
naive per-subscriber loop on 1,000 subscribers in the same run, for the ratio.

    python benchmarks/ranking_speed.py [--subscribers 100000] [--window 50000] [PAPERS.jsonl]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from digest.ranking import Candidate, Profile, RankParams, TextModel, paper_text
from digest.ranking.context import build_context
from digest.ranking.profiles import ProfileBatch, _rows_to_csr, build_batch
from digest.ranking.scoring import rank_batch

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "papers-sample.jsonl"
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "papers-sample-small.jsonl"
CATEGORIES = ["cs.LG", "cs.CL", "cs.CV", "cs.AI", "stat.ML", "cs.RO", "cs.IR", "eess.IV"]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synth_papers(rows: list[dict], n: int, rng: np.random.Generator, prefix: str):
    """n papers: a title and abstract sentences resampled from the sample (new texts, same
    vocabulary and style)."""
    sentences = [s for r in rows for s in r["abstract"].split(". ") if s]
    titles = [r["title"] for r in rows]
    papers = []
    for i in range(n):
        k = int(rng.integers(4, 9))
        abstract = ". ".join(sentences[j] for j in rng.integers(0, len(sentences), k))
        papers.append(Candidate(
            id=f"{prefix}{i}", title=titles[int(rng.integers(len(titles)))], abstract=abstract,
            categories=tuple(rng.choice(CATEGORIES, int(rng.integers(1, 3)), replace=False)),
            upvotes=int(rng.poisson(3) * rng.integers(0, 20)),
        ))
    return papers


def synth_profile_arrays(n, context, rng):
    """ProfileBatch for n subscribers built from arrays, as a DB query would deliver them."""
    terms = context.model.terms
    unigrams = np.array([t for t in terms if " " not in t])
    kinds = rng.choice(3, n, p=[0.4, 0.4, 0.2])  # 0 interests, 1 likes, 2 categories
    # Distinct interest phrases: 3-5 random terms each; vectorised in one call.
    n_int = int((kinds == 0).sum())
    phrases = [" ".join(rng.choice(unigrams, int(rng.integers(3, 6)))) for _ in range(n_int)]
    t0 = time.perf_counter()
    interest_rows = context.model.tfidf(phrases)
    vectorise_s = time.perf_counter() - t0
    from scipy import sparse

    interests = sparse.lil_matrix((0, 0))
    order = np.zeros(n, dtype=np.int64)
    order[kinds == 0] = np.arange(n_int)
    empty_row = sparse.csr_matrix((1, interest_rows.shape[1]), dtype=np.float32)
    stacked = sparse.vstack([interest_rows, empty_row]).tocsr()
    order[kinds != 0] = n_int
    interests = stacked[order]
    pool_size = len(context.pool)
    like_rows, like_vals, banned_rows, cat_rows = [], [], [], []
    counts = rng.integers(5, 51, n)
    all_likes = rng.integers(context.size, pool_size, int(counts.sum()))
    pos = 0
    for i in range(n):
        if kinds[i] == 1:
            liked = all_likes[pos : pos + counts[i]]
            pos += counts[i]
            like_rows.append(liked)
            like_vals.append(np.full(len(liked), 1.0 / len(liked)))
        else:
            like_rows.append(())
            like_vals.append(())
        banned_rows.append(rng.integers(0, context.size, 3))
        cat_rows.append(rng.integers(0, len(context.categories), 2) if kinds[i] == 2 else ())
    batch = ProfileBatch(
        users=[str(i) for i in range(n)],
        interests=interests,
        likes=_rows_to_csr(like_rows, pool_size, like_vals),
        categories=_rows_to_csr(cat_rows, len(context.categories)),
        authors=_rows_to_csr([()] * n, len(context.authors)),
        banned=_rows_to_csr(banned_rows, context.size),
        trending_weight=np.full(n, np.nan),
    )
    return batch, vectorise_s, int(counts[kinds == 1].sum())


def naive(context, batch, rows, top_n):
    """Per-subscriber loop: profile vector, scores against every paper, Python exclusion."""
    dense, trend = context.vectors.dense, context.trend
    out = []
    for i in rows:
        likes = batch.likes[i]
        z = np.zeros(dense.shape[1])
        for j, w in zip(likes.indices, likes.data, strict=True):
            z += w * context.pool_vectors.dense[j]
        z += context.model.project(batch.interests[i])[0]
        norm = np.linalg.norm(z)
        z = z / norm if norm else z
        scores = 0.75 * (dense @ z) + 0.25 * trend
        banned = set(batch.banned[i].indices.tolist())
        for j in range(len(scores)):
            if j in banned:
                scores[j] = -np.inf
        out.append(np.argsort(-scores)[:top_n])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("papers", nargs="?", type=Path,
                        default=DEFAULT if DEFAULT.exists() else FIXTURE)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=2_000)
    parser.add_argument("--window", type=int, default=50_000)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = [json.loads(line) for line in args.papers.read_text().splitlines() if line.strip()]
    window = synth_papers(rows, args.window, rng, "w")
    candidates = synth_papers(rows, args.candidates, rng, "c")
    params = RankParams()
    base_rss = rss_mb()
    print(f"{args.subscribers:,} subscribers x {args.candidates:,} candidates, top {args.top}; "
          f"window {args.window:,} papers")

    t0 = time.perf_counter()
    model = TextModel.fit([paper_text(p) for p in window + candidates])
    fit_s = time.perf_counter() - t0
    print(f"text model fit on {args.window + args.candidates:,} papers: {fit_s:.1f} s "
          f"({len(model.terms):,} terms, {model.dims} dims)")

    t0 = time.perf_counter()
    context = build_context(candidates, pool=window, model=model, params=params)
    context_s = time.perf_counter() - t0
    print(f"edition context (vectorise candidates + {len(window):,}-paper pool, trending, "
          f"near-duplicates): {context_s:.2f} s")

    t0 = time.perf_counter()
    batch, vec_s, n_likes = synth_profile_arrays(args.subscribers, context, rng)
    batch_s = time.perf_counter() - t0
    print(f"profiles from arrays: {batch_s:.2f} s (of which interest text vectorised: "
          f"{vec_s:.2f} s; {n_likes:,} likes)")

    t0 = time.perf_counter()
    result = rank_batch(context, batch, top_n=args.top, params=params)
    rank_s = time.perf_counter() - t0
    print(f"rank (scores, exclusions, top-k, diversity): {rank_s:.2f} s "
          f"= {1e6 * rank_s / args.subscribers:.1f} us per subscriber")
    edition_s = context_s + batch_s + rank_s
    print(f"whole edition without the model fit: {edition_s:.2f} s; "
          f"peak RSS {rss_mb():,.0f} MB (at start {base_rss:,.0f} MB)")

    t0 = time.perf_counter()
    sample = range(min(1000, args.subscribers))
    for i in sample:
        result.picks(i)
    explain_s = (time.perf_counter() - t0) / len(sample)
    print(f"Pick objects with reasons, on demand: {1e3 * explain_s:.2f} ms per subscriber")

    n_naive = min(1000, args.subscribers)
    t0 = time.perf_counter()
    naive(context, batch, range(n_naive), args.top)
    naive_s = time.perf_counter() - t0
    per_naive = naive_s / n_naive
    per_ours = rank_s / args.subscribers
    print(f"naive per-subscriber loop on {n_naive:,}: {naive_s:.2f} s "
          f"= {1e6 * per_naive:.0f} us per subscriber; ours is {per_naive / per_ours:.0f}x faster "
          f"(naive extrapolated to {args.subscribers:,}: {per_naive * args.subscribers:.0f} s)")

    profiles = [Profile(user=str(i), interests="quantization of language models",
                        like=tuple(p.id for p in window[i % 100 : i % 100 + 20]),
                        exclude=frozenset({candidates[i % 50].id}))
                for i in range(min(100_000, args.subscribers))]
    t0 = time.perf_counter()
    build_batch(profiles, context, params)
    print(f"profiles from {len(profiles):,} Profile objects (20 likes each): "
          f"{time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
