"""Ranking quality on real researchers' libraries (CiteULike), through `digest rank --profiles`.

Data and protocol: ../shared/data/citeulike-dev/README.md (read from there, never copied into
the project). For each user, half of the library (a fixed shuffle) is the profile's liked
papers, the rest is held out; every other paper of the pool is a candidate. Recall@10 (also
nDCG@10, MRR) averaged over users, for the two references of that README (a TF-IDF centroid,
arxiv-sanity-lite's per-user LinearSVC) and for our ranker with each text backend, in one run.
Ours runs through `rankfile.run_rank`, the function `digest rank --papers --profiles` calls,
with the ranking settings' defaults.

    python benchmarks/citeulike.py [--data DIR] [--backends tfidf,both] [--embeddings DIR]
                                   [--seeds 42,43,44]
        --embeddings DIR   keep the papers' sentence embeddings in DIR between runs
        --seeds S,...      the protocol's split seed is 42 (the full tables); every further seed
                           re-splits each library and prints one line of ratios, to show what
                           holds across folds rather than on one split
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from digest.rankfile import run_rank
from digest.settings import RankingSettings
from digest.usecases.digests import params_for

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "citeulike-dev"
K = 10


def _jsonl(path: Path) -> list[dict]:
    # split("\n"), not splitlines(): abstracts hold U+2028 and other line-breaking characters.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def load(directory: Path, seed: int = 42):
    papers = _jsonl(directory / "papers.jsonl")
    users = _jsonl(directory / "users.jsonl")
    ids = [p["id"] for p in papers]
    index = {p: i for i, p in enumerate(ids)}
    splits = []
    for u in users:
        rng = np.random.default_rng([seed, int(u["user"])])
        library = rng.permutation(sorted(int(x) for x in u["library"]))
        half = len(library) // 2
        liked = [index[str(x)] for x in library[:half]]
        held = [index[str(x)] for x in library[half:]]
        splits.append((u["user"], liked, held))
    return papers, ids, splits


def metrics(top: list[int], held: list[int]) -> tuple[float, float, float]:
    """Recall@10, nDCG@10 (binary gains), reciprocal rank within the top 10."""
    hits = np.isin(np.asarray(top[:K], dtype=int), held)
    gains = hits / np.log2(np.arange(2, len(hits) + 2))
    ideal = (1 / np.log2(np.arange(2, min(K, len(held)) + 2))).sum()
    first = np.flatnonzero(hits)
    return hits.sum() / len(held), gains.sum() / ideal, 1 / (first[0] + 1) if len(first) else 0.0


def top_of(scores: np.ndarray, liked: list[int]) -> list[int]:
    s = np.asarray(scores, dtype=float).copy()
    s[liked] = -np.inf
    return np.argsort(-s, kind="stable")[:K].tolist()


def references(papers, splits) -> dict[str, np.ndarray]:
    texts = [p["title"] + ". " + p["abstract"] for p in papers]
    x = TfidfVectorizer(
        sublinear_tf=True, stop_words="english", ngram_range=(1, 2), min_df=2
    ).fit_transform(texts)
    out = {"TF-IDF centroid": [], "per-user LinearSVC (arxiv-sanity-lite)": []}
    everyone = np.arange(len(papers))
    for user, liked, held in splits:
        centroid = np.asarray(x[liked].mean(axis=0)).ravel()
        out["TF-IDF centroid"].append(metrics(top_of(x @ centroid, liked), held))
        rng = np.random.default_rng(zlib.crc32(user.encode()))
        negatives = rng.choice(np.setdiff1d(everyone, liked), 1000, replace=False)
        y = np.r_[np.ones(len(liked)), np.zeros(len(negatives))]
        svm = LinearSVC(class_weight="balanced", C=0.01, max_iter=10000, tol=1e-6)
        svm.fit(x[np.r_[liked, negatives]], y)
        out["per-user LinearSVC (arxiv-sanity-lite)"].append(
            metrics(top_of(svm.decision_function(x), liked), held)
        )
    return {k: np.array(v) for k, v in out.items()}


class DiskEmbeddings:
    """An EmbeddingStore kept in DIR/citeulike-embeddings.npz between runs (outside the repo)."""

    def __init__(self, directory: Path | None) -> None:
        from digest.ranking.semantic import MemoryEmbeddings

        self.memory = MemoryEmbeddings()
        self.path = directory / "citeulike-embeddings.npz" if directory else None
        if self.path and self.path.exists():
            stored = json.loads(self.path.with_suffix(".json").read_text())
            with np.load(self.path) as blobs:
                for (model, key, digest), name in stored:
                    self.memory.papers[(model, key)] = (digest, blobs[name].tobytes())

    def paper_vectors(self, keys, model):
        return self.memory.paper_vectors(keys, model)

    def save_paper_vectors(self, rows, model):
        self.memory.save_paper_vectors(rows, model)
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            items = list(self.memory.papers.items())
            arrays = {f"v{i}": np.frombuffer(v, dtype="<f2") for i, (_, (_, v)) in enumerate(items)}
            np.savez(self.path, **arrays)
            names = [[[m, k, h], f"v{i}"] for i, ((m, k), (h, _)) in enumerate(items)]
            self.path.with_suffix(".json").write_text(json.dumps(names))

    def text_vectors(self, hashes, model):
        return self.memory.text_vectors(hashes, model)

    def save_text_vectors(self, rows, model):
        self.memory.save_text_vectors(rows, model)


def ours(papers, splits, ids, backend: str, store, workdir: Path) -> tuple[np.ndarray, float]:
    papers_file = workdir / "papers.jsonl"
    profiles_file = workdir / "profiles.jsonl"
    papers_file.write_text(
        "".join(
            json.dumps({"id": p["id"], "title": p["title"], "abstract": p["abstract"]}) + "\n"
            for p in papers
        )
    )
    profiles_file.write_text(
        "".join(
            json.dumps({"user": user, "like": [ids[i] for i in liked]}) + "\n"
            for user, liked, _ in splits
        )
    )
    settings = RankingSettings()
    out = io.StringIO()
    started = time.perf_counter()
    run_rank(
        papers_file,
        profiles_path=profiles_file,
        top=K,
        out=out,
        params=params_for(settings),
        text_backend=backend,
        semantic_weight=settings.semantic_weight,
        embeddings=store,
    )
    elapsed = time.perf_counter() - started
    index = {p: i for i, p in enumerate(ids)}
    ranked = {}
    for line in out.getvalue().splitlines():
        row = json.loads(line)
        ranked[row["user"]] = [index[r["id"]] for r in row["ranked"]]
    return np.array([metrics(ranked[u], held) for u, _, held in splits]), elapsed


def spread(name: str, recall: np.ndarray, sizes: np.ndarray, against: np.ndarray) -> str:
    bands = [(10, 14), (14, 20), (20, 30), (30, 80)]
    parts = [recall[(sizes >= lo) & (sizes < hi)].mean() for lo, hi in bands]
    wins, losses = int((recall > against).sum()), int((recall < against).sum())
    q = np.percentile(recall, [25, 50, 75])
    return (
        f"| {name} | "
        + " | ".join(f"{p:.3f}" for p in parts)
        + f" | {q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f} | {wins} / {losses} |"
    )


def evaluate(papers, ids, splits, backends, store, *, verbose=False) -> dict[str, np.ndarray]:
    """Per-user (Recall@10, nDCG@10, RR) of both references and of each backend of ours."""
    started = time.perf_counter()
    results = references(papers, splits)
    if verbose:
        print(f"references: {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            r, elapsed = ours(papers, splits, ids, backend, store, Path(tmp))
            results[f"ours, text_backend={backend}"] = r
            if verbose:
                print(f"ours ({backend}): {elapsed:.1f} s through run_rank (embedding included)")
    return results


def better_reference(results: dict[str, np.ndarray]) -> str:
    return max(
        ("TF-IDF centroid", "per-user LinearSVC (arxiv-sanity-lite)"),
        key=lambda k: results[k][:, 0].mean(),
    )


def other_splits(papers, ids, seeds, backends, store, data: Path) -> None:
    """One line a seed: each library split again, the same rankers, the ratios to the better
    reference of that split. A gain that holds here is not an accident of one split."""
    print(
        "\nOther splits (the same users and rankers; Recall@10, ratio to the better reference):\n"
    )
    print(
        "| seed | TF-IDF centroid | per-user SVM | "
        + " | ".join(f"ours, {b}" for b in backends)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(backends))
    ratios: dict[str, list[float]] = {b: [] for b in backends}
    for seed in seeds:
        _, _, splits = load(data, seed)
        results = evaluate(papers, ids, splits, backends, store)
        ref = results[better_reference(results)][:, 0].mean()
        cells = [f"{results[k][:, 0].mean():.4f}" for k in list(results)[:2]]
        for b in backends:
            mean = results[f"ours, text_backend={b}"][:, 0].mean()
            ratios[b].append(mean / ref)
            cells.append(f"{mean:.4f} ({mean / ref:.2f}x)")
        print(f"| {seed} | " + " | ".join(cells) + " |")
    print(
        "\nRatio across seeds: "
        + "; ".join(
            f"{b} {np.mean(r):.3f} (min {min(r):.3f}, max {max(r):.3f})" for b, r in ratios.items()
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--backends", default="tfidf,both")
    parser.add_argument("--embeddings", type=Path, default=None)
    parser.add_argument("--seeds", default="42")
    args = parser.parse_args(argv)
    if not (args.data / "users.jsonl").exists():
        print(f"CiteULike set skipped: {args.data} is absent (see the benchmark's docstring)")
        return 0

    seeds = [int(s) for s in args.seeds.split(",")]
    papers, ids, splits = load(args.data, seeds[0])
    sizes = np.array([len(liked) + len(held) for _, liked, held in splits])
    print(
        f"CiteULike: {len(papers)} papers, {len(splits)} users (library {sizes.min()}-"
        f"{sizes.max()}, median {int(np.median(sizes))})"
    )
    store = DiskEmbeddings(args.embeddings)
    backends = args.backends.split(",")
    results = evaluate(papers, ids, splits, backends, store, verbose=True)
    best = better_reference(results)
    n = len(splits)
    print(
        "\n| ranker | Recall@10 | ± SE | vs better reference | paired diff ± SE | nDCG@10 | MRR |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        diff = r[:, 0] - results[best][:, 0]
        print(
            f"| {name} | {r[:, 0].mean():.4f} | {r[:, 0].std(ddof=1) / np.sqrt(n):.4f} | "
            f"{r[:, 0].mean() / results[best][:, 0].mean():.2f} | {diff.mean():+.4f} ± "
            f"{diff.std(ddof=1) / np.sqrt(n):.4f} | {r[:, 1].mean():.4f} | {r[:, 2].mean():.4f} |"
        )
    print(
        f"\nSpread across users (Recall@10 by library size; quartiles; users won / lost "
        f"against {best}):\n"
    )
    print("| ranker | 10-13 | 14-19 | 20-29 | 30+ | quartiles | won / lost |")
    print("|---|---|---|---|---|---|---|")
    bands = ((10, 14), (14, 20), (20, 30), (30, 80))
    counts = [int(((sizes >= lo) & (sizes < hi)).sum()) for lo, hi in bands]
    print(f"| users | {' | '.join(map(str, counts))} | | |")
    for name, r in results.items():
        print(spread(name, r[:, 0], sizes, results[best][:, 0]))
    if len(seeds) > 1:
        other_splits(papers, ids, seeds, backends, store, args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
