"""Render N personalised digests (10 papers each, MIME built) on one core.

Reports digests/s for the production path (paper fragments rendered once per edition, only
assembly per subscriber) and, in the same run, for rendering every digest from scratch (a fresh
renderer per digest: no fragment reuse, so no encoding reused either), plus the ratio. Both paths
run the same code and give the same bytes; before timing, the production path's message is
checked against one built with the straightforward encoders. Usage:
python benchmarks/render.py [N]
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from digest import bootstrap, ranking
from digest.models import Edition, Subscriber
from digest.render import EditionRenderer, build_message, message_id, paper_view
from digest.settings import Settings
from digest.usecases.digests import EditionContext, compose_message, render_for

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "fixtures" / "papers-sample-small.jsonl"
NOW = datetime(2026, 11, 24, 7, tzinfo=UTC)


def _papers(count: int) -> list[SimpleNamespace]:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    rng = random.Random(1)
    papers = []
    for i in range(count):
        row = rows[i % len(rows)]
        papers.append(
            SimpleNamespace(
                key=f"2611.{i:05d}",
                arxiv_id=f"2611.{i:05d}",
                title=row["title"],
                abstract=row["abstract"],
                authors=[f"Author {j}" for j in range(rng.randint(1, 9))],
                categories=["cs.LG", "cs.CL"],
                url=None,
                pdf_url=None,
                code_url="https://github.com/example/repo" if i % 3 == 0 else None,
                upvotes=rng.randint(0, 200),
                github_stars=rng.randint(0, 900),
                ai_summary=None,
            )
        )
    return papers


def _check_same_bytes(services, context, subscriber, pick, profile) -> None:
    """The reused encodings change nothing: the message equals the straightforward build."""
    digest, _, links = render_for(
        services, context, subscriber, pick, profile, delivery_id=subscriber.id
    )
    mid = message_id(edition_id=1, subscriber_id=subscriber.id, domain="d.example", secret="k")
    fast = compose_message(
        services, subscriber=subscriber, digest=digest, links=links, msg_id=mid, now=NOW
    )
    head = fast[: fast.index(b"\r\n\r\n")].decode("ascii").split("\r\n")
    plain = build_message(
        sender=services.settings.email.from_address,
        to=subscriber.email,
        subject=digest.subject,
        text=digest.text,
        html=digest.html,
        message_id=mid,
        date=NOW,
        headers=dict(
            line.split(": ", 1) for line in head if line.startswith(("List-", "Reply-To"))
        ),
    )
    if fast != plain:
        raise SystemExit("the production path's message differs from the plain build")


def run(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(mode="dev", database_url=f"sqlite:///{tmp}/bench.db")
        services = bootstrap.build(settings)
        papers = _papers(200)
        views = {p.key: paper_view(p, max_tldr_chars=320) for p in papers}
        edition = Edition(id=1, edition_date=NOW.date())
        rng = random.Random(2)
        subscribers = [
            Subscriber(
                id=i + 1,
                email=f"reader{i}@example.com",
                interests="quantization of language models",
            )
            for i in range(count)
        ]
        picks = [
            [
                ranking.Pick(
                    id=k,
                    score=0.5,
                    relevance=0.4,
                    trending=0.1,
                    why="matches: quantization, low-bit",
                )
                for k in rng.sample(list(views), 10)
            ]
            for _ in range(count)
        ]
        profile = ranking.Profile(user="x", interests="quantization")

        def one(context: EditionContext, subscriber: Subscriber, pick: list) -> bytes:
            # Each digest has its ledger row, as in production: short rating links.
            digest, _, links = render_for(
                services, context, subscriber, pick, profile, delivery_id=subscriber.id
            )
            mid = message_id(
                edition_id=1, subscriber_id=subscriber.id, domain="d.example", secret="k"
            )
            return compose_message(
                services, subscriber=subscriber, digest=digest, links=links, msg_id=mid, now=NOW
            )

        def renderer() -> EditionRenderer:
            return EditionRenderer(
                env=services.templates,
                edition_date=NOW.date(),
                postal_address=settings.email.postal_address,
            )

        shared = EditionContext(edition, [], views, renderer())
        one(shared, subscribers[0], picks[0])  # warm the template cache
        _check_same_bytes(services, shared, subscribers[0], picks[0], profile)
        started = time.perf_counter()
        size = 0
        for subscriber, pick in zip(subscribers, picks, strict=True):
            size += len(one(shared, subscriber, pick))
        reuse_s = time.perf_counter() - started

        baseline_n = max(count // 5, 1)
        started = time.perf_counter()
        for subscriber, pick in zip(subscribers[:baseline_n], picks[:baseline_n], strict=True):
            one(EditionContext(edition, [], views, renderer()), subscriber, pick)
        scratch_s = time.perf_counter() - started
        services.close()
    reuse_rate = count / reuse_s
    scratch_rate = baseline_n / scratch_s
    return {
        "digests": count,
        "digests_per_s": reuse_rate,
        "scratch_digests_per_s": scratch_rate,
        "ratio": reuse_rate / scratch_rate,
        "mean_message_kb": size / count / 1024,
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    figures = run(n)
    print(f"rendered {figures['digests']} digests (10 papers, MIME built), one core")
    print(f"  fragments once per edition : {figures['digests_per_s']:8.0f} digests/s")
    print(f"  from scratch per digest    : {figures['scratch_digests_per_s']:8.0f} digests/s")
    print(f"  ratio                      : {figures['ratio']:8.2f}x")
    print(f"  mean message size          : {figures['mean_message_kb']:8.1f} KiB")
