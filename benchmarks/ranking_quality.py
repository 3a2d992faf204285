"""Ranking quality on real papers: our ranker vs a TF-IDF centroid and a per-user linear SVM.

Data: JSONL with "id", "title", "abstract", "listing"; papers of the same listing are related.
Trials: a profile of 5 liked papers from one listing; relevant = the rest of that listing;
candidates = every other paper. Metrics: precision@10, recall@10, nDCG@10, MRR, averaged over
trials (and per listing, to show where each method wins or loses).

Baselines, in the same run on the same trials:
  (a) TF-IDF centroid cosine (scikit-learn defaults + English stop words, sublinear tf)
  (b) arxiv-sanity-lite style: LinearSVC on TF-IDF (1-2 grams), positives = liked,
      1,000 random negatives (all others when fewer), C=0.01, class_weight="balanced"
  (c) zotero-arxiv-daily style embedding similarity, when the `semantic` extra is installed:
      each candidate's abstract embedding scored by its cosine to every liked abstract,
      weighted 1 / (1 + log10(rank)) by recency of the like (newest first) and normalised,
      as its recommender does (it uses GIST-small; here the bundled all-MiniLM-L6-v2)
With the extra, ours is also run with the semantic backend: embeddings alone and blended with
LSA at a few weights (same trials, same batch path as the service).
Also: a text-interest variant (profile = a short phrase naming the listing's theme) against
TF-IDF cosine of the phrase, and a feedback simulation (interest text only on day 0, then each
day the user rates the 10 papers shown: up when same listing, down otherwise).

    python benchmarks/ranking_quality.py [PAPERS.jsonl] [--trials 600] [--seed 0]
        [--embeddings DIR]   keep computed sentence embeddings in DIR between runs
        [--no-semantic]      skip the embedding rows even when the extra is installed
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from digest.ranking import Candidate, Profile, RankParams, TextModel, paper_text, rank_result
from digest.ranking.context import build_context
from digest.ranking.semantic import embedding_text, lsa_dims
from digest.settings import SEMANTIC_MODULES

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "papers-sample.jsonl"
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "papers-sample-small.jsonl"
K = 10
# Phrases naming each listing's theme, written after reading its most distinctive terms.
THEMES = {
    "000": [
        "deep learning for computer vision with small datasets",
        "image classification networks, model size and accuracy",
        "neural networks for images and medical imaging",
    ],
    "001": [
        "MLP architectures, weight initialization and scaling laws",
        "scaling laws for LLM training and compute",
        "multilayer perceptron models and weight pruning",
    ],
    "002": [
        "layer-wise dependencies in transformers and knowledge distillation",
        "multi-task and multilingual transfer across transformer layers",
        "dependency parsing and structure in language models",
    ],
}


def load(path: Path) -> tuple[list[Candidate], np.ndarray]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    papers = [Candidate(id=str(r["id"]), title=r["title"], abstract=r["abstract"]) for r in rows]
    return papers, np.array([r["listing"] for r in rows])


def metrics(order: np.ndarray, relevant: np.ndarray) -> tuple[float, float, float, float]:
    """P@10, R@10, nDCG@10, MRR of a ranked list of row numbers (best first)."""
    hits = np.isin(order[:K], relevant)
    gains = hits / np.log2(np.arange(2, len(hits) + 2))
    ideal = (1 / np.log2(np.arange(2, min(K, len(relevant)) + 2))).sum()
    ranks = np.nonzero(np.isin(order, relevant))[0]
    mrr = 1.0 / (ranks[0] + 1) if len(ranks) else 0.0
    return hits.sum() / K, hits.sum() / len(relevant), gains.sum() / ideal, mrr


def order_from_scores(scores: np.ndarray, banned: np.ndarray) -> np.ndarray:
    s = scores.astype(float).copy()
    s[banned] = -np.inf
    order = np.argsort(-s, kind="stable")
    return order[np.isfinite(s[order])]


def make_trials(labels: np.ndarray, n: int, seed: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    names = sorted(set(labels))
    trials = []
    for t in range(n):
        name = names[t % len(names)]
        members = np.nonzero(labels == name)[0]
        trials.append((name, rng.choice(members, 5, replace=False)))
    return trials


def report(title: str, table: dict[str, list[tuple]], names: list[str]) -> dict[str, dict]:
    print(f"\n### {title}\n")
    print(
        "| method | P@10 | R@10 | nDCG@10 | MRR | " + " | ".join(f"P@10 {n}" for n in names) + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(names))
    summary = {}
    for method, rows in table.items():
        arr = np.array([r[1:] for r in rows], dtype=float)
        lab = np.array([r[0] for r in rows])
        mean = arr.mean(axis=0)
        per = [arr[lab == n, 0].mean() for n in names]
        summary[method] = {
            "p": mean[0],
            "r": mean[1],
            "ndcg": mean[2],
            "mrr": mean[3],
            "per": per,
            "sem_p": arr[:, 0].std() / np.sqrt(len(arr)),
        }
        print(
            f"| {method} | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} | {mean[3]:.3f} | "
            + " | ".join(f"{p:.3f}" for p in per)
            + " |"
        )
    return summary


class DiskEncoder:
    """The bundled sentence encoder with a cache of vectors by text in DIR (outside the repo),
    so repeated runs on a shared 2-core machine embed the sample once."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / "embeddings.npz" if directory else None
        self.cache: dict[str, np.ndarray] = {}
        if self.path and self.path.exists():
            with np.load(self.path) as stored:
                self.cache = {k: stored[k] for k in stored.files}
        self.encoder = None
        self.computed_s = 0.0
        self.computed = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        from digest.ranking.semantic import DIMS, load_encoder

        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self.cache))
        if missing:
            if self.encoder is None:
                self.encoder = load_encoder()
            todo = {k: t for k, t in zip(keys, texts, strict=True) if k in set(missing)}
            started = time.perf_counter()
            vectors = self.encoder.embed(list(todo.values()))
            self.computed_s += time.perf_counter() - started
            self.computed += len(todo)
            self.cache.update(zip(todo, vectors, strict=True))
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(self.path, **self.cache)
        if not keys:
            return np.zeros((0, DIMS), dtype=np.float32)
        return np.vstack([self.cache[k] for k in keys]).astype(np.float32)


def zotero_scores(emb: np.ndarray, liked: np.ndarray) -> np.ndarray:
    """zotero-arxiv-daily's rerank: sum over the liked papers (newest first) of cosine x
    1 / (1 + log10(position)), weights normalised to 1."""
    decay = 1 / (1 + np.log10(np.arange(len(liked)) + 1))
    decay /= decay.sum()
    return (emb @ emb[liked].T) @ decay


def semantic_models(model, papers, encoder, weights):
    """Our model with the semantic backend at each weight (embeddings share of the dense view)."""
    from digest.ranking.semantic import Embeddings, MemoryEmbeddings, SemanticModel

    embeddings = Embeddings(MemoryEmbeddings(), encoder=lambda: encoder)
    out = {}
    for w in weights:
        out[w] = SemanticModel(model, embeddings, weight=w, papers=papers)
    return out


# ranking.semantic_weight's default, with text_backend = "both" (the default backend).
RECOMMENDED = 0.5


def label(w: float) -> str:
    return "ours, semantic" if w == 1.0 else f"ours, {1 - w:.2f} LSA + {w:.2f} semantic"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "papers", nargs="?", type=Path, default=DEFAULT if DEFAULT.exists() else FIXTURE
    )
    parser.add_argument("--trials", type=int, default=600)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embeddings", type=Path, default=None)
    parser.add_argument("--no-semantic", action="store_true")
    parser.add_argument("--weights", default="1,0.75,0.5,0.25")
    args = parser.parse_args(argv)
    semantic = not args.no_semantic and all(find_spec(m) for m in SEMANTIC_MODULES)
    weights = [float(w) for w in args.weights.split(",")] if semantic else []
    papers, labels = load(args.papers)
    names = sorted(set(labels))
    n = len(papers)
    print(
        f"{n} papers from {args.papers.name}; listings "
        + ", ".join(f"{k}: {(labels == k).sum()}" for k in names)
        + f"; {args.trials} trials"
    )
    texts = [paper_text(p) for p in papers]
    ids = np.array([p.id for p in papers])
    trials = make_trials(labels, args.trials, args.seed)
    params = RankParams(trending_weight=0.0)

    # Ours: one model for the window, then every trial's profile in ONE batch.
    started = time.perf_counter()
    model = TextModel.fit(texts)
    context = build_context(papers, model=model, params=params)
    profiles = [Profile(user=str(t), like=tuple(ids[liked])) for t, (_, liked) in enumerate(trials)]
    result = rank_result(papers, profiles, top_n=n, params=params, context=context)
    ours_s = time.perf_counter() - started

    # Semantic backend: papers embedded once (outside the timings), then the same batch path.
    sem_contexts = {}
    if semantic:
        encoder = DiskEncoder(args.embeddings)
        started = time.perf_counter()
        # The blend's own LSA (256 dimensions; see semantic.lsa_dims), as an edition fits it.
        blend_base = TextModel.fit(texts, dims=lsa_dims("both"))
        models = semantic_models(blend_base, papers, encoder, weights)
        embed_s = time.perf_counter() - started
        for w, sem_model in models.items():
            sem_contexts[w] = build_context(papers, model=sem_model, params=params)
        print(
            f"semantic backend: {encoder.computed} texts embedded in {encoder.computed_s:.1f} s"
            f" ({embed_s:.1f} s with loading; the rest from the cache)"
        )
        # zotero-arxiv-daily embeds abstracts only; ours embeds title + abstract.
        abstracts = encoder.embed([p.abstract for p in papers])
        titled = encoder.embed([embedding_text(p) for p in papers])
    else:
        print("semantic rows skipped: the model weights are not installed (or --no-semantic)")

    # (a) TF-IDF centroid
    base = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    xa = normalize(base.fit_transform(texts))
    # (b) arxiv-sanity-lite's SVM features
    svm_vec = TfidfVectorizer(
        stop_words="english", sublinear_tf=True, ngram_range=(1, 2), max_df=0.9, max_features=20000
    )
    xb = svm_vec.fit_transform(texts)
    rng = np.random.default_rng(args.seed + 1)
    table: dict[str, list[tuple]] = {"ours": [], "(a) TF-IDF centroid": [], "(b) LinearSVC": []}
    sem_results = {}
    for w, ctx in sem_contexts.items():
        started = time.perf_counter()
        sem_results[w] = rank_result(papers, profiles, top_n=n, params=params, context=ctx)
        print(f"{label(w)}: {len(trials)} trials ranked in {time.perf_counter() - started:.2f} s")
        table[label(w)] = []
    if semantic:
        table["(c) embedding similarity (zotero-arxiv-daily)"] = []
        table["(c) same, embeddings of title + abstract"] = []
    svm_s = 0.0
    for t, (name, liked) in enumerate(trials):
        relevant = np.setdiff1d(np.nonzero(labels == name)[0], liked)
        ours = result.columns[t]
        table["ours"].append((name, *metrics(ours[ours >= 0], relevant)))
        centroid = np.asarray(xa[liked].mean(axis=0)).ravel()
        table["(a) TF-IDF centroid"].append(
            (name, *metrics(order_from_scores(xa @ centroid, liked), relevant))
        )
        t0 = time.perf_counter()
        others = np.setdiff1d(np.arange(n), liked)
        negatives = rng.choice(others, min(1000, len(others)), replace=False)
        rows = np.concatenate([liked, negatives])
        y = np.r_[np.ones(len(liked)), np.zeros(len(negatives))]
        svm = LinearSVC(C=0.01, class_weight="balanced", max_iter=10000).fit(xb[rows], y)
        scores = svm.decision_function(xb)
        svm_s += time.perf_counter() - t0
        table["(b) LinearSVC"].append((name, *metrics(order_from_scores(scores, liked), relevant)))
        for w, res in sem_results.items():
            row = res.columns[t]
            table[label(w)].append((name, *metrics(row[row >= 0], relevant)))
        if semantic:
            scores = zotero_scores(abstracts, liked)
            table["(c) embedding similarity (zotero-arxiv-daily)"].append(
                (name, *metrics(order_from_scores(scores, liked), relevant))
            )
            scores = zotero_scores(titled, liked)
            table["(c) same, embeddings of title + abstract"].append(
                (name, *metrics(order_from_scores(scores, liked), relevant))
            )
    likes = report("5 liked papers", table, names)
    peers = [m for m in table if m.startswith("(")]
    best_base = max(peers, key=lambda m: likes[m]["p"])
    base_p = np.array([r[1] for r in table["ours"]])
    for method in [m for m in table if m.startswith("ours,")]:
        gain = likes[method]["p"] - likes[best_base]["p"]
        paired = np.array([r[1] for r in table[method]]) - base_p
        print(
            f"{method} vs {best_base}: P@10 {gain:+.3f}; vs ours (TF-IDF/LSA) "
            f"{paired.mean():+.3f} (paired standard error "
            f"{paired.std() / np.sqrt(len(paired)):.3f})"
        )
    gain = likes["ours"]["p"] - likes[best_base]["p"]
    print(
        f"\nours vs best baseline {best_base}: P@10 {gain:+.3f} "
        f"({100 * gain / likes[best_base]['p']:+.1f} %), standard error ~"
        f"{likes['ours']['sem_p']:.3f}; "
        f"nDCG {likes['ours']['ndcg'] - likes[best_base]['ndcg']:+.3f}, "
        f"MRR {likes['ours']['mrr'] - likes[best_base]['mrr']:+.3f}"
    )
    print(
        f"time for all {len(trials)} trials: ours {ours_s:.2f} s (fit + one batch), "
        f"SVM {svm_s:.2f} s"
    )

    # Text-interest variant.
    phrases = [(name, phrase) for name in names for phrase in THEMES.get(name, [name])]
    text_table: dict[str, list[tuple]] = {"ours": [], "(a) TF-IDF cosine": []}
    profiles = [Profile(user=p, interests=p) for _, p in phrases]
    result = rank_result(papers, profiles, top_n=n, params=params, context=context)
    sem_text = {
        w: rank_result(papers, profiles, top_n=n, params=params, context=ctx)
        for w, ctx in sem_contexts.items()
    }
    if semantic:
        text_table["(c) embedding cosine of the phrase"] = []
        phrase_emb = encoder.embed([p for _, p in phrases])
    for w in sem_text:
        text_table[label(w)] = []
    for t, (name, phrase) in enumerate(phrases):
        relevant = np.nonzero(labels == name)[0]
        ours = result.columns[t]
        text_table["ours"].append((name, *metrics(ours[ours >= 0], relevant)))
        for w, res in sem_text.items():
            row = res.columns[t]
            text_table[label(w)].append((name, *metrics(row[row >= 0], relevant)))
        if semantic:
            scores = abstracts @ phrase_emb[t]
            text_table["(c) embedding cosine of the phrase"].append(
                (name, *metrics(order_from_scores(scores, []), relevant))
            )
        q = normalize(base.transform([phrase]))
        text_table["(a) TF-IDF cosine"].append(
            (name, *metrics(order_from_scores((xa @ q.T).toarray().ravel(), []), relevant))
        )
    report("interest text only (3 phrases per listing)", text_table, names)

    # Feedback simulation. Papers are split in two halves: each day the user is shown (and
    # rates) the top 10 of the "shown" half; precision@10 is measured on the other half, which
    # is never rated, so the curve measures the profile, not the pool running out of easy hits.
    runs = {"ours": context}
    if RECOMMENDED in sem_contexts:
        runs[label(RECOMMENDED)] = sem_contexts[RECOMMENDED]
    for method, ctx in runs.items():
        feedback(papers, labels, ids, phrases, ctx, params, args, title=method)
    return 0


def feedback(papers, labels, ids, phrases, context, params, args, *, title: str) -> None:
    names = sorted(set(labels))
    n = len(papers)
    splits = 10
    print(
        f"\n### feedback simulation, {title}\n(interest text on day 0, then rating the 10 shown)\n"
    )
    print(
        "| day | P@10 held-out | P@10 of the 10 shown | "
        + " | ".join(f"held-out {n}" for n in names)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(names))
    listing_of = dict(zip(ids, labels, strict=True))
    users = [(s, name, phrase) for s in range(splits) for name, phrase in phrases]
    halves = [np.random.default_rng(args.seed + 10 + s).random(n) < 0.5 for s in range(splits)]
    liked: list[list[str]] = [[] for _ in users]
    disliked: list[list[str]] = [[] for _ in users]
    curve = []
    for day in range(args.days + 1):
        profiles = [
            Profile(user=str(u), interests=p, like=tuple(liked[u]), dislike=tuple(disliked[u]))
            for u, (_, _, p) in enumerate(users)
        ]
        result = rank_result(papers, profiles, top_n=n, params=params, context=context)
        held, seen = [], []
        for u, (split, name, _) in enumerate(users):
            order = result.columns[u][result.columns[u] >= 0]
            shown_half = halves[split][order]
            shown = [ids[j] for j in order[shown_half][:K]]
            test = order[~shown_half][:K]
            held.append((name, float(np.mean(labels[test] == name))))
            good = [i for i in shown if listing_of[i] == name]
            seen.append(len(good) / K)
            liked[u].extend(good)
            disliked[u].extend(i for i in shown if listing_of[i] != name)
        arr = np.array([p for _, p in held])
        lab = np.array([name for name, _ in held])
        curve.append(arr.mean())
        print(
            f"| {day} | {arr.mean():.3f} | {np.mean(seen):.3f} | "
            + " | ".join(f"{arr[lab == n].mean():.3f}" for n in names)
            + " |"
        )
    rising = all(b > a for a, b in zip(curve, curve[1:], strict=False))
    print(f"\nheld-out precision rises every day: {rising}")


if __name__ == "__main__":
    sys.exit(main())
