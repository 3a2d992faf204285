"""Ranking speed: a whole edition for 100,000 (or --subscribers N) subscribers x 2,000 papers.

Synthesises, by resampling the sample abstracts: a 50,000-paper window (the text model is
fitted on it, timed), 2,000 candidates with categories and upvotes, and N subscribers as plain
`Profile` objects (40 % interest text only, 40 % 5-50 likes from the window, 20 % categories
only; each with 3 delivered papers excluded), loaded in batches of 100,000 as an edition
would. Times the whole edition (context, Profile objects to matrices, scores, exclusions,
top-k, MMR), reports peak RSS and the cost of Pick objects with reasons per rendered
subscriber, then a naive per-subscriber loop on 1,000 subscribers in the same run (ratio).

    python benchmarks/ranking_speed.py [--subscribers 100000] [--window 50000] [PAPERS.jsonl]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from digest.ranking import Candidate, Profile, RankParams, TextModel, paper_text
from digest.ranking.context import build_context
from digest.ranking.profiles import build_batch
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
    words = [r["title"].split() for r in rows]
    papers = []
    for i in range(n):
        k = int(rng.integers(4, 9))
        abstract = ". ".join(sentences[j] for j in rng.integers(0, len(sentences), k))
        papers.append(
            Candidate(
                id=f"{prefix}{i}",
                title=_title(words, rng),
                abstract=abstract,
                categories=tuple(rng.choice(CATEGORIES, int(rng.integers(1, 3)), replace=False)),
                upvotes=int(rng.poisson(3) * rng.integers(0, 20)),
            )
        )
    return papers


def _title(words: list[list[str]], rng: np.random.Generator) -> str:
    a, b = (words[int(j)] for j in rng.integers(0, len(words), 2))
    return " ".join(a[: len(a) // 2] + b[len(b) // 2 :])


def synth_profiles(n, context, rng, start=0):
    """n plain `Profile` objects, as an edition loads them: 40 % interest text only (3-5
    vocabulary words), 40 % 5-50 liked window papers, 20 % two categories; each with 3
    delivered candidates excluded."""
    unigrams = np.array([t for t in context.model.terms if " " not in t])
    window_ids = np.array([p.id for p in context.pool[context.size :]], dtype=object)
    candidate_ids = np.array([c.id for c in context.candidates], dtype=object)
    kinds = rng.choice(3, n, p=[0.4, 0.4, 0.2])
    counts = rng.integers(5, 51, n)
    profiles = []
    for i in range(n):
        exclude = frozenset(candidate_ids[rng.integers(0, len(candidate_ids), 3)])
        user = str(start + i)
        if kinds[i] == 0:
            words = rng.choice(unigrams, int(rng.integers(3, 6)))
            profiles.append(Profile(user, interests=" ".join(words), exclude=exclude))
        elif kinds[i] == 1:
            liked = window_ids[rng.integers(0, len(window_ids), counts[i])]
            profiles.append(Profile(user, like=tuple(liked), exclude=exclude))
        else:
            profiles.append(
                Profile(
                    user,
                    categories=tuple(rng.choice(CATEGORIES, 2, replace=False)),
                    exclude=exclude,
                )
            )
    return profiles


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


class SeededVectors:
    """Unit vectors seeded by each text's CRC: what the embedding table holds, for a timing run.

    Ranking cost does not depend on the values; the model's own cost (embedding each paper and
    interest text once, when it first appears) is measured in ranking_quality.py.
    """

    name = "all-MiniLM-L6-v2"

    def embed(self, texts):
        out = np.empty((len(texts), 384), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(384)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def stored_vectors(papers):
    """An embedding store holding every paper's vector, as ingest-time embedding leaves it."""
    from digest.ranking import semantic

    store = semantic.MemoryEmbeddings()
    semantic.Embeddings(store, encoder=SeededVectors).papers(papers)
    return store


def with_stored_vectors(model, papers, store, backend):
    from digest.ranking import semantic

    embeddings = semantic.Embeddings(store, encoder=SeededVectors)
    weight = 1.0 if backend == "semantic" else 0.5
    return semantic.SemanticModel(model, embeddings, weight=weight, papers=papers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "papers", nargs="?", type=Path, default=DEFAULT if DEFAULT.exists() else FIXTURE
    )
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=2_000)
    parser.add_argument("--window", type=int, default=50_000)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument(
        "--batch",
        type=int,
        default=100_000,
        help="subscribers loaded and ranked at a time (bounds memory)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backend",
        choices=("tfidf", "both", "semantic"),
        default="both",
        help="ranking.text_backend; with both/semantic, stored 384-d vectors are stood in for "
        "by seeded random unit vectors (embedding itself is timed in ranking_quality.py)",
    )
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = [json.loads(line) for line in args.papers.read_text().splitlines() if line.strip()]
    window = synth_papers(rows, args.window, rng, "w")
    candidates = synth_papers(rows, args.candidates, rng, "c")
    params = RankParams()
    print(
        f"{args.subscribers:,} subscribers x {args.candidates:,} candidates, top {args.top}; "
        f"window {args.window:,} papers; batches of {args.batch:,}"
    )

    t0 = time.perf_counter()
    from digest.ranking.semantic import lsa_dims

    model = TextModel.fit(
        [paper_text(p) for p in window + candidates],
        keys=[p.id for p in window + candidates],
        dims=lsa_dims(args.backend),
    )
    fit_s = time.perf_counter() - t0
    print(
        f"text model fit on {args.window + args.candidates:,} papers: {fit_s:.1f} s "
        f"({len(model.terms):,} terms, {model.dims} dims)"
    )

    if args.backend != "tfidf":
        store = stored_vectors(window + candidates)  # not timed: done at ingest
        t0 = time.perf_counter()
        model = with_stored_vectors(model, window + candidates, store, args.backend)
        print(
            f"{args.backend} backend: {len(window) + len(candidates):,} stored paper vectors "
            f"read and joined to LSA ({model.dims} dims): {time.perf_counter() - t0:.1f} s"
        )

    t0 = time.perf_counter()
    context = build_context(candidates, pool=window, model=model, params=params)
    context_s = time.perf_counter() - t0
    print(
        f"edition context (vectorise candidates + {len(window):,}-paper pool, trending, "
        f"near-duplicates): {context_s:.2f} s"
    )

    # The edition: subscribers arrive in batches of plain Profile objects (as loaded from the
    # database); each batch becomes matrices and is ranked. Synthesising the objects is not
    # timed; everything the ranker does with them is.
    build_s = rank_s = 0.0
    columns = []
    first_batch = None
    for start in range(0, args.subscribers, args.batch):
        profiles = synth_profiles(min(args.batch, args.subscribers - start), context, rng, start)
        if args.backend != "tfidf":
            # Interest texts are embedded once when a subscriber writes them and stored, as
            # papers are at ingest: put them in the store untimed (texts new to the store
            # would be embedded, and that cost is the model's, see ranking_quality.py).
            from digest.ranking import semantic

            semantic.Embeddings(store, encoder=SeededVectors).texts(
                list({p.interests.strip() for p in profiles if p.interests.strip()})
            )
        t0 = time.perf_counter()
        batch = build_batch(profiles, context, params)
        t1 = time.perf_counter()
        result = rank_batch(context, batch, top_n=args.top, params=params)
        t2 = time.perf_counter()
        build_s, rank_s = build_s + t1 - t0, rank_s + t2 - t1
        columns.append(result.columns)
        if first_batch is None:
            first_batch = (profiles[:1000], result)
        del profiles, batch, result
    edition_s = context_s + build_s + rank_s
    print(
        f"profiles to matrices (Profile objects in, one transform of all interest texts): "
        f"{build_s:.2f} s"
    )
    print(
        f"rank (scores, exclusions, top-k, MMR): {rank_s:.2f} s "
        f"= {1e6 * rank_s / args.subscribers:.1f} us per subscriber"
    )
    print(
        f"WHOLE EDITION (context + profiles + rank, model fit excluded): {edition_s:.2f} s; "
        f"peak RSS {rss_mb():,.0f} MB"
    )

    sample_profiles, result = first_batch
    t0 = time.perf_counter()
    for i in range(len(sample_profiles)):
        result.picks(i)
    explain_s = (time.perf_counter() - t0) / len(sample_profiles)
    print(
        f"Pick objects with reasons and MMR'd lists, for rendered subscribers: "
        f"{1e3 * explain_s:.3f} ms per subscriber"
    )

    n_naive = len(sample_profiles)
    t0 = time.perf_counter()
    naive(context, build_batch(sample_profiles, context, params), range(n_naive), args.top)
    naive_s = time.perf_counter() - t0
    per_naive = naive_s / n_naive
    per_ours = edition_s / args.subscribers
    print(
        f"naive per-subscriber loop on {n_naive:,}: {naive_s:.2f} s "
        f"= {1e6 * per_naive:.0f} us per subscriber; the whole edition is "
        f"{per_naive / per_ours:.0f}x faster per subscriber "
        f"(naive extrapolated to {args.subscribers:,}: {per_naive * args.subscribers:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
