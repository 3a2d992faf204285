"""Web pages against a bare Starlette route serving the same bytes, in the same run.

`digest serve` (uvicorn, WEB_CONCURRENCY workers, the real app over SQLite with the sample
papers) and a bare Starlette app (same uvicorn settings and worker count, one route per page
returning fixed bytes) are driven in turns by the same load: C keep-alive connections from a
raw asyncio HTTP/1.1 client, each sending the CSRF cookie a browser would send back, for S
seconds per turn. The bare app serves the very bytes the real page answered with, so the ratio
is the cost of producing the page, nothing else.

Pages: the landing page (the same for everyone: rendered once per edition and fetch, then
served from bytes), a rating page and a manage page (per subscriber, rendered per request).
Usage: python benchmarks/web.py [--rounds 3] [--seconds 3] [--clients 8] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
SAMPLE = ROOT / "digest" / "sample_data" / "hf_daily_papers.json"
PAGES = ("landing", "rating", "manage")


# --- the bare app (imported by uvicorn's workers as `web:bare_app`) ---------------------------


def bare_app():
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    folder = Path(os.environ["BENCH_BARE_DIR"])
    routes = []
    for name in PAGES:
        body = (folder / f"{name}.html").read_bytes()

        async def endpoint(request, body=body):
            return Response(body, media_type="text/html; charset=utf-8")

        routes.append(Route(f"/{name}", endpoint))
    return Starlette(routes=routes)


# --- load ---------------------------------------------------------------------------------------


async def _one_connection(port: int, path: str, cookie: str, until: float, latencies: list):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nUser-Agent: bench\r\n\r\n"
    ).encode()
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{path}: {head.splitlines()[0]!r}")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _load(port: int, path: str, cookie: str, seconds: float, clients: int):
    latencies: list[float] = []
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(
        *(_one_connection(port, path, cookie, until, latencies) for _ in range(clients))
    )
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


def load(port, path, cookie, seconds, clients):
    return asyncio.run(_load(port, path, cookie, seconds, clients))


# --- set-up -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def seed(env: dict[str, str]) -> dict[str, str]:
    """A database with the sample papers and one subscriber; the per-subscriber page paths."""
    os.environ.update(env)
    from sqlmodel import Session

    from digest.bootstrap import build
    from digest.db import upgrade
    from digest.settings import load_from_environment
    from digest.store.papers import list_papers
    from digest.store.subscribers import add_subscriber
    from digest.usecases.ingest import ingest_file

    services = build(load_from_environment())
    upgrade(services.engine)
    ingest_file(services, SAMPLE, kind="hf-daily", source="hf-daily")
    with Session(services.engine) as session:
        sid = add_subscriber(
            session, email="reader@bench.test", interests="agents, sparse attention", confirmed=True
        ).id
        keys = [p.key for p in list_papers(session)[:10]]
        session.commit()
    paths = {
        "landing": "/",
        "rating": f"/f/{services.tokens.dumps('feedback', [sid, 0, keys])}/0/up",
        "manage": f"/manage/{services.tokens.dumps('manage', sid)}",
    }
    services.close()
    return paths


def fetch(port: int, path: str) -> tuple[bytes, str]:
    """(body, csrf cookie) of one GET, over a plain socket."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    cookie = next(
        (
            line.split(b":", 1)[1].split(b";")[0].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"set-cookie:")
        ),
        "",
    )
    return body, cookie


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or 0))
    args = parser.parse_args()
    workers = args.workers or len(os.sched_getaffinity(0))
    tmp = Path(tempfile.mkdtemp(prefix="digest-web-bench-"))
    env = {
        "DIGEST_MODE": "dev",
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "DIGEST_BASE_URL": "http://127.0.0.1:8000",
    }
    paths = seed(env)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    app_port, bare_port = free_port(), free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    app = subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "serve", "--port", str(app_port),
         "--workers", str(workers)],
        env={**clean, **env}, **quiet,
    )  # fmt: skip
    bare = None
    try:
        wait_for(app_port, app)
        cookie = ""
        for name in PAGES:
            body, given = fetch(app_port, paths[name])
            cookie = cookie or given
            (tmp / f"{name}.html").write_bytes(body)
        cookie_header = cookie  # "csrf=<value>", sent back by every client as a browser does
        # The same uvicorn settings as `digest serve` (workers, log level, no proxy headers).
        serve_bare = (
            f"import uvicorn; uvicorn.run('web:bare_app', factory=True, app_dir={str(HERE)!r}, "
            f"host='127.0.0.1', port={bare_port}, workers={workers}, proxy_headers=False, "
            "log_level='info')"
        )
        bare = subprocess.Popen(
            [sys.executable, "-c", serve_bare], env={**clean, "BENCH_BARE_DIR": str(tmp)}, **quiet
        )
        wait_for(bare_port, bare)
        for name in PAGES:  # warm both (the landing cache, imports, connections)
            load(app_port, paths[name], cookie_header, 0.5, args.clients)
            load(bare_port, f"/{name}", cookie_header, 0.5, args.clients)
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.rounds):
            for name in PAGES:  # alternate, so that noise from other load hits both alike
                results.setdefault((name, "bare"), []).append(
                    load(bare_port, f"/{name}", cookie_header, args.seconds, args.clients)
                )
                results.setdefault((name, "app"), []).append(
                    load(app_port, paths[name], cookie_header, args.seconds, args.clients)
                )
    finally:
        for process in (app, bare):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    print(
        f"{args.clients} clients, {workers} uvicorn workers each, median of {args.rounds} "
        f"turns of {args.seconds:.0f} s"
    )
    print(f"{'page':8} {'bytes':>7} {'bare req/s':>11} {'app req/s':>10} {'ratio':>6} "
          f"{'bare p50':>9} {'app p50':>8}")  # fmt: skip
    for name in PAGES:
        bare_rps = statistics.median(r for r, _ in results[(name, "bare")])
        app_rps = statistics.median(r for r, _ in results[(name, "app")])
        bare_p50 = statistics.median(p for _, p in results[(name, "bare")])
        app_p50 = statistics.median(p for _, p in results[(name, "app")])
        size = (tmp / f"{name}.html").stat().st_size
        print(
            f"{name:8} {size:7d} {bare_rps:11.0f} {app_rps:10.0f} {app_rps / bare_rps:6.2f} "
            f"{bare_p50:7.1f}ms {app_p50:6.1f}ms"
        )


if __name__ == "__main__":
    main()
