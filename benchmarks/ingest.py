"""Ingest throughput: a 2,000-item arXiv-format RSS feed parsed, cleaned and upserted into SQLite.

Reports entries/s for the full path and, from the same bytes in the same run, for a bare
xml.etree parse + field extraction (the floor), and the ratio between them.

    python benchmarks/ingest.py [PAPERS.jsonl] [--items 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

from digest.bootstrap import Services, build
from digest.db import upgrade
from digest.settings import Settings
from digest.sources import arxiv_rss, parse
from digest.usecases.ingest import ingest_bytes

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "papers-sample.jsonl"
BUNDLED = Path(__file__).resolve().parents[1] / "digest" / "sample_data" / "arxiv_rss_quant-ph.xml"
CATEGORIES = ["cs.LG", "cs.CL", "cs.CV", "cs.AI", "stat.ML", "cs.IR", "quant-ph"]
ARXIV_NS = "http://arxiv.org/schemas/atom"
DC_NS = "http://purl.org/dc/elements/1.1/"


def load_texts(path: Path) -> list[tuple[str, str]]:
    """(title, abstract) pairs from the papers sample, or from the bundled RSS when it is absent."""
    if path.exists():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        return [(r["title"], r.get("abstract") or "") for r in rows if r.get("title")]
    result = parse("arxiv-rss", BUNDLED.read_bytes())
    return [(r.title, r.abstract) for r in result.records]


def make_feed(texts: list[tuple[str, str]], items: int, *, seed: int = 7) -> bytes:
    """An RSS 2.0 document in arXiv's current format with `items` distinct papers."""
    rng = random.Random(seed)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<rss xmlns:arxiv="{ARXIV_NS}" xmlns:dc="{DC_NS}" version="2.0"><channel>'
        "<title>cs updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs</link>"
        "<description>cs updates</description>"
    ]
    for i in range(items):
        title, abstract = texts[i % len(texts)]
        arxiv_id = f"2601.{i:05d}"
        announce = rng.choices(["new", "cross", "replace", "replace-cross"], [50, 15, 25, 10])[0]
        version = 1 if announce in ("new", "cross") else rng.randint(2, 4)
        cats = rng.sample(CATEGORIES, rng.randint(1, 3))
        authors = ", ".join(f"Author {i}-{k}" for k in range(rng.randint(1, 8)))
        # Every item carries TeX with `<`: the case the text pipeline must keep intact.
        description = (
            f"arXiv:{arxiv_id}v{version} Announce Type: {announce} \n"
            f"Abstract: {abstract} We show $a<b$ for all $n \\geq 1$."
        )
        parts.append(
            f"<item><title>{escape(title)}</title><link>https://arxiv.org/abs/{arxiv_id}</link>"
            f"<description>{escape(description)}</description>"
            f'<guid isPermaLink="false">oai:arXiv.org:{arxiv_id}v{version}</guid>'
            + "".join(f"<category>{c}</category>" for c in cats)
            + "<pubDate>Mon, 12 Jan 2026 00:00:00 -0500</pubDate>"
            f"<arxiv:announce_type>{announce}</arxiv:announce_type>"
            f"<dc:creator>{escape(authors)}</dc:creator></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def etree_floor(data: bytes) -> int:
    """The floor: parse with xml.etree and pull out the same fields, no cleaning, no storage."""
    root = ET.fromstring(data)
    count = 0
    for item in root.iter("item"):
        fields = (
            item.findtext("title"),
            item.findtext("link"),
            item.findtext("description"),
            item.findtext("guid"),
            [c.text for c in item.findall("category")],
            item.findtext(f"{{{ARXIV_NS}}}announce_type"),
            item.findtext(f"{{{DC_NS}}}creator"),
            item.findtext("pubDate"),
        )
        count += fields[0] is not None
    return count


def timed(fn, repeat: int) -> float:  # noqa: ANN001 - a plain callable
    """Median seconds of `repeat` calls."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def services_on(url: str) -> Services:
    services = build(Settings(mode="dev", database_url=url))
    upgrade(services.engine)
    return services


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("papers", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = make_feed(load_texts(args.papers), args.items)
    assert etree_floor(data) == args.items
    now = datetime(2026, 1, 12, 6, tzinfo=UTC)

    with tempfile.TemporaryDirectory() as tmp:
        runs = iter(range(10_000))

        def full() -> None:
            # A fresh database per run: every item is an INSERT, the costlier path.
            services = services_on(f"sqlite:///{tmp}/bench-{next(runs)}.db")
            started = time.perf_counter()
            report = ingest_bytes(services, data, kind="arxiv-rss", source="bench", now=now)
            full.seconds.append(time.perf_counter() - started)  # type: ignore[attr-defined]
            assert report.fetched == args.items and report.status == "ok", report
            services.close()

        full.seconds = []  # type: ignore[attr-defined]
        for _ in range(args.repeat):
            full()
        full_s = statistics.median(full.seconds)  # type: ignore[attr-defined]

        services = services_on(f"sqlite:///{tmp}/rerun.db")
        ingest_bytes(services, data, kind="arxiv-rss", source="bench", now=now)
        rerun_s = timed(
            lambda: ingest_bytes(services, data, kind="arxiv-rss", source="bench", now=now),
            args.repeat,
        )
        services.close()

    parse_s = timed(lambda: parse("arxiv-rss", data), args.repeat)
    # The path a malformed arXiv feed takes: feedparser's forgiving parser.
    fallback_s = timed(lambda: arxiv_rss.parse(data, fast=False), min(args.repeat, 3))
    floor_s = timed(lambda: etree_floor(data), args.repeat)
    n = args.items
    rows = [
        ("full ingest (parse+clean+upsert, fresh SQLite)", full_s),
        ("re-ingest (every row exists: merge+update)", rerun_s),
        ("parse+clean only (arxiv-rss parser)", parse_s),
        ("parse+clean, feedparser fallback path", fallback_s),
        ("floor: xml.etree parse+field extraction", floor_s),
    ]
    print(f"feed: {n} items, {len(data) / 1e6:.2f} MB; median of {args.repeat} runs")
    for label, seconds in rows:
        print(f"{label:<48} {seconds:7.3f} s {n / seconds:>9,.0f} entries/s")
    print(f"ratio full/floor: {full_s / floor_s:.1f}x, parse+clean/floor: {parse_s / floor_s:.1f}x")


if __name__ == "__main__":
    main()
