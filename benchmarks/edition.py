"""A whole edition for N subscribers on SQLite and PostgreSQL, phase by phase, with floors.

For each store and each N, in one run:
  * import: `digest subscribers import --confirmed`'s use case on a generated CSV of N rows
    (read + validate + bulk insert), against the floor: csv + a bare executemany INSERT of the
    same rows into a bare table (sqlite3 / psycopg, no validation, no indexes);
  * plan, then the send run (one worker, default settings: 4 connections, batches of 200):
    claim, rank, render, send, record (record runs on its own thread, overlapping send);
  * the floor of sending: the project's SMTP transport alone, the same number of pre-built
    messages over 4 connections;
  * peak RSS of this process, and what the sink received: messages, distinct recipients and
    duplicates (exactly N and 0 expected).
With --workers 1 3 (PostgreSQL): the same edition again, from a fresh schema, sent by that
many sending processes at once; wall time and the speed-up, duplicates at the sink.

Papers come from the recorded fixtures (tests/fixtures); the sink is a minimal asyncio SMTP
server in its own process (benchmarks/rawsink.py: answers and counts only, never the bottleneck).

Usage:
    python benchmarks/edition.py [--subscribers 10000 100000] [--stores sqlite postgres]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--workers 1 3]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from digest import bootstrap  # noqa: E402
from digest.db import upgrade  # noqa: E402
from digest.mailer import SmtpConnection  # noqa: E402
from digest.models import utcnow  # noqa: E402
from digest.settings import Settings, SmtpSettings  # noqa: E402
from digest.usecases.editions import plan_edition, send_edition  # noqa: E402
from digest.usecases.ingest import ingest_file  # noqa: E402
from digest.usecases.subscriber_import import import_subscribers, read_import_csv  # noqa: E402

from rawsink import Sink  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
HF_DAILY = FIXTURES / "hf_daily_papers_api_limit30_2026-06-12.json"
NOW = datetime(2026, 6, 12, 8, tzinfo=UTC)
TOPICS = (
    "video generation",
    "language model agents",
    "reinforcement learning",
    "robotics",
    "speech recognition",
    "sparse attention",
)

# ------------------------------------------------------------------ stores


class Store:
    """A fresh database per run: a SQLite file, or a PostgreSQL schema dropped afterwards."""

    def __init__(self, kind: str, folder: Path, pg_url: str) -> None:
        self.kind, self.folder, self.pg_url = kind, folder, pg_url
        self.schema = ""

    def fresh(self) -> str:
        if self.kind == "sqlite":
            path = self.folder / f"edition-{uuid.uuid4().hex[:8]}.db"
            return f"sqlite:///{path}"
        self.drop()
        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(self.pg_url)
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        admin.dispose()
        separator = "&" if "?" in self.pg_url else "?"
        return f"{self.pg_url}{separator}options=-csearch_path%3D{self.schema}"

    def drop(self) -> None:
        if self.kind == "postgres" and self.schema:
            admin = create_engine(self.pg_url)
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
            admin.dispose()
            self.schema = ""


def write_csv(path: Path, count: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "interests", "categories", "timezone", "hour"])
        for i in range(count):
            writer.writerow(
                [f"reader{i:07d}@example{i % 97}.org", TOPICS[i % len(TOPICS)], "", "UTC", "7"]
            )


def floor_insert(kind: str, url: str, path: Path) -> float:
    """csv + one executemany INSERT of every row into a bare table: the floor of importing."""
    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [tuple(r) for r in csv.reader(handle)][1:]
    sql = "INSERT INTO floor_rows VALUES ({})".format(", ".join(["%s"] * 5))
    if kind == "sqlite":
        database = url.removeprefix("sqlite:///") + ".floor"
        connection = sqlite3.connect(database)
        connection.execute("CREATE TABLE floor_rows (a TEXT, b TEXT, c TEXT, d TEXT, e TEXT)")
        connection.executemany(sql.replace("%s", "?"), rows)
        connection.commit()
        connection.close()
    else:
        import psycopg

        schema = url.rsplit("%3D", 1)[1]
        plain = url.split("?", 1)[0].replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(plain, options=f"-csearch_path={schema}") as connection:
            connection.execute("CREATE TABLE floor_rows (a text, b text, c text, d text, e text)")
            with connection.cursor() as cursor:
                cursor.executemany(sql, rows)
    return time.perf_counter() - started


def floor_transport(port: int, count: int, message: bytes) -> float:
    """The project's SMTP transport alone: `count` pre-built messages over 4 connections."""
    settings = SmtpSettings(host="127.0.0.1", port=port, connections=4)

    async def run() -> None:
        async def one(share: int) -> None:
            connection = SmtpConnection(settings)
            for i in range(share):
                outcome = await connection.send(
                    sender="d@bench.localhost", recipient=f"t{i}@bench.localhost", message=message
                )
                if outcome.kind != "sent":
                    raise RuntimeError(outcome)
            await connection.close()

        await asyncio.gather(*(one(count // 4 + (i < count % 4)) for i in range(4)))

    started = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - started


def _settings(url: str, port: int) -> Settings:
    return Settings(mode="dev", database_url=url, smtp=SmtpSettings(host="127.0.0.1", port=port))


def one_edition(kind: str, store: Store, sink: Sink, count: int, folder: Path) -> dict:
    url = store.fresh()
    services = bootstrap.build(_settings(url, sink.port))
    upgrade(services.engine)
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=NOW)
    path = folder / f"list-{count}.csv"
    if not path.exists():
        write_csv(path, count)
    figures: dict[str, float] = {}
    started = time.perf_counter()
    rows, errors = read_import_csv(path)
    report = import_subscribers(services, rows, confirmed=True, now=utcnow())
    figures["import"] = time.perf_counter() - started
    assert not errors and report.added == count, (errors[:3], report)
    figures["floor insert"] = floor_insert(kind, url, path)
    started = time.perf_counter()
    edition, planned = plan_edition(services, edition_date=NOW.date(), now=NOW)
    figures["plan"] = time.perf_counter() - started
    assert planned == count
    sink.restart()
    started = time.perf_counter()
    sent = asyncio.run(send_edition(services, edition, now=NOW))
    figures["send run"] = time.perf_counter() - started
    for phase in ("claim", "rank", "render", "send", "record"):
        figures[phase] = sent.phases.get(phase, 0.0)
    received, distinct = sink.counts()
    sample = _sample_message(services, edition)
    services.close()
    sink.restart()
    figures["floor transport"] = floor_transport(sink.port, count, sample)
    store.drop()
    return {
        **figures,
        "sent": sent.sent,
        "received": received,
        "distinct": distinct,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "message_kib": len(sample) / 1024,
    }


def _sample_message(services, edition) -> bytes:  # type: ignore[no-untyped-def]
    """One message of this edition as sent (rebuilt), for the transport floor."""
    from sqlmodel import Session, select

    from digest.models import Subscriber
    from digest.usecases.digests import compose_message, digests_for, edition_context

    with Session(services.engine) as session:
        subscriber = session.exec(select(Subscriber).limit(1)).one()
        context = edition_context(services, session, edition, now=NOW)
        digest, _, links = digests_for(services, session, context, [subscriber])[0]
        return compose_message(
            services, subscriber=subscriber, digest=digest, links=links, msg_id="<x@b>", now=NOW
        )


SENDER = """
import asyncio, sys
from datetime import UTC, datetime
from digest import bootstrap
from digest.usecases.editions import plan_edition, send_edition
from digest.settings import load_from_environment
services = bootstrap.build(load_from_environment())
now = datetime(2026, 6, 12, 8, 0, tzinfo=UTC)
edition, _ = plan_edition(services, edition_date=now.date(), now=now)
report = asyncio.run(send_edition(services, edition, now=now, wait_for_others_s=60))
print(report.sent, report.claims_held)
"""


def workers_run(store: Store, sink: Sink, count: int, folder: Path, workers: int) -> dict:
    """The same edition sent by `workers` processes at once (fresh schema)."""
    url = store.fresh()
    services = bootstrap.build(_settings(url, sink.port))
    upgrade(services.engine)
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=NOW)
    rows, _ = read_import_csv(folder / f"list-{count}.csv")
    import_subscribers(services, rows, confirmed=True, now=utcnow())
    plan_edition(services, edition_date=NOW.date(), now=NOW)
    services.close()
    sink.restart()
    env = {
        **os.environ,
        "DIGEST_MODE": "dev",
        "DIGEST_DATABASE_URL": url,
        "DIGEST_SMTP_HOST": "127.0.0.1",
        "DIGEST_SMTP_PORT": str(sink.port),
    }
    started = time.perf_counter()
    processes = [
        subprocess.Popen([sys.executable, "-c", SENDER], env=env, stdout=subprocess.PIPE)
        for _ in range(workers)
    ]
    outputs = [p.communicate()[0].decode().split() for p in processes]
    seconds = time.perf_counter() - started
    received, distinct = sink.counts()
    store.drop()
    return {
        "seconds": seconds,
        "sent": sum(int(o[0]) for o in outputs),
        "received": received,
        "distinct": distinct,
        "codes": [p.returncode for p in processes],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DIGEST_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--workers", type=int, nargs="*", default=[])
    args = parser.parse_args()
    phases = ("import", "plan", "claim", "rank", "render", "send", "record", "send run")
    with Sink() as sink, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for count in args.subscribers:
            results = {}
            for kind in args.stores:
                results[kind] = one_edition(
                    kind, Store(kind, folder, args.database_url), sink, count, folder
                )
            print(f"\n{count:,} subscribers, one worker, seconds (floors in the same run):")
            print(f"  {'phase':<22}" + "".join(f"{k:>12}" for k in results))
            for phase in (*phases, "floor insert", "floor transport"):
                print(f"  {phase:<22}" + "".join(f"{r[phase]:12.2f}" for r in results.values()))
            for label, key, fmt in (
                ("import rows/s", None, "{:12,.0f}"),
                ("import + send run", "total", "{:12.1f}"),
                ("peak RSS MiB", "rss_mib", "{:12.0f}"),
                ("message KiB", "message_kib", "{:12.1f}"),
                ("sent (ledger)", "sent", "{:12,}"),
                ("received (sink)", "received", "{:12,}"),
                ("distinct recipients", "distinct", "{:12,}"),
            ):
                cells = []
                for r in results.values():
                    if key is None:
                        value = count / r["import"]
                    elif key == "total":
                        value = r["import"] + r["plan"] + r["send run"]
                    else:
                        value = r[key]
                    cells.append(fmt.format(value))
                print(f"  {label:<22}" + "".join(cells))
            if "sqlite" in results and "postgres" in results:
                ratio = results["postgres"]["send run"] / results["sqlite"]["send run"]
                print(f"  PostgreSQL send run / SQLite send run: {ratio:.2f}x")
            if args.workers and "postgres" in args.stores:
                store = Store("postgres", folder, args.database_url)
                runs = {w: workers_run(store, sink, count, folder, w) for w in args.workers}
                base = runs[args.workers[0]]["seconds"]
                for w, r in runs.items():
                    print(
                        f"  PostgreSQL, {w} sending process(es): {r['seconds']:.1f} s wall, "
                        f"speed-up {base / r['seconds']:.2f}x, sent {r['sent']:,}, "
                        f"received {r['received']:,}, distinct {r['distinct']:,}, "
                        f"duplicates {r['received'] - r['distinct']}, exit codes {r['codes']}"
                    )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
