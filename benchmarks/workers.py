"""Workers benchmark: one edition to N subscribers on PostgreSQL with 1, 2 and 3 worker processes.

Each run gets a fresh schema (dropped afterwards), N active subscribers due now, a few papers,
and a local SMTP sink (aiosmtpd) in its OWN process that records Message-IDs.
Worker processes are real `digest worker --send-only` processes; the run ends when every row is
sent. Reported: wall time (first worker started -> last row sent), messages/s, and the sink's
count of distinct and duplicate Message-IDs (each subscriber must get exactly one).

Usage:
    python benchmarks/workers.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test \
        [--subscribers 20000] [--workers 1 2 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlmodel import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.db import make_engine, upgrade  # noqa: E402
from digest.models import Delivery  # noqa: E402
from tests.worker_helpers import add_papers, add_subscribers  # noqa: E402


def sink_process(port: int, ready: multiprocessing.Event, out: multiprocessing.Queue) -> None:
    """The aiosmtpd sink in its own process: 250 to everything, counts Message-IDs."""
    from digest.smtpd.sink import SmtpSink

    counts: Counter[str] = Counter()

    class Counting:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            data = envelope.original_content or envelope.content  # type: ignore[attr-defined]
            head = data.split(b"\r\n\r\n", 1)[0]
            for line in head.split(b"\r\n"):
                if line[:11].lower() == b"message-id:":
                    counts[line[11:].strip().decode()] += 1
                    break
            return "250 2.0.0 OK"

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with SmtpSink(Counting(), port=port):  # type: ignore[arg-type]
        ready.set()
        stop.wait()
    out.put(dict(counts))


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(base_url: str, subscribers: int, workers: int, digest_bin: str) -> dict[str, float]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    port = free_port()
    ready, out = multiprocessing.Event(), multiprocessing.Queue()
    sink = multiprocessing.Process(target=sink_process, args=(port, ready, out))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        upgrade(engine)
        now = datetime.now(UTC)
        add_papers(engine, 20, now=now)
        add_subscribers(engine, subscribers, hour=now.hour)
        sink.start()
        ready.wait(10)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        env.update(
            DIGEST_MODE="dev",
            DIGEST_DATABASE_URL=url,
            DIGEST_SMTP_HOST="127.0.0.1",
            DIGEST_SMTP_PORT=str(port),
            DIGEST_SCHEDULER_SEND_INTERVAL_S="0.5",
        )
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [digest_bin, "worker", "--send-only", "--name", f"bench-{i}"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(workers)
        ]
        while True:
            with Session(engine) as session:
                sent = session.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.state == "sent")
                )
            if sent == subscribers:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited early")
            time.sleep(0.2)
        wall = time.perf_counter() - started
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        sink.terminate()  # SIGTERM: the sink reports its counts
        counts = out.get(timeout=30)
        sink.join(timeout=10)
        return {
            "workers": workers,
            "subscribers": subscribers,
            "wall_s": wall,
            "msg_per_s": subscribers / wall,
            "distinct": len(counts),
            "duplicates": sum(n - 1 for n in counts.values()),
        }
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        if sink.is_alive():
            sink.kill()
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="PostgreSQL URL (a schema is made)")
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    digest_bin = shutil.which("digest", path=str(Path(sys.executable).parent)) or "digest"
    print(f"cores={os.cpu_count()} subscribers={args.subscribers}")
    print("| workers | wall s | msg/s | distinct Message-IDs | duplicates |")
    print("|---|---|---|---|---|")
    for workers in args.workers:
        r = run(args.database_url, args.subscribers, workers, digest_bin)
        print(
            f"| {r['workers']} | {r['wall_s']:.1f} | {r['msg_per_s']:.0f} | "
            f"{r['distinct']} | {r['duplicates']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
