"""A real HTTP server on 127.0.0.1 for fetch tests, with programmable responses per path.

Each path serves a list of Responses in turn (the last repeats): status, body, headers, ETag/304,
Retry-After, trickling bodies, bodies without Content-Length, redirects. Every request is logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Response:
    """One programmed response."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None  # sent as ETag; a matching If-None-Match gets 304
    trickle_s: float | None = None  # send the body one byte per this many seconds
    content_length: bool = True  # False: no Content-Length, close the connection at the end


@dataclass
class Request:
    """One request the server received."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


Dynamic = Callable[[Request], Response]


class FeedServer:
    """The server: `route(path, *responses)` programs it, `requests` tells what was asked."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Response] | Dynamic] = {}
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        # A short poll interval keeps shutdown (each test's teardown) fast.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> FeedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def route(self, path: str, *responses: Response) -> None:
        self.routes[path] = list(responses)

    def dynamic(self, path: str, fn: Dynamic) -> None:
        self.routes[path] = fn

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def next_response(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            programmed = self.routes.get(request.path)
            if programmed is None:
                return Response(404, b"not found")
            if callable(programmed):
                return programmed(request)
            return programmed.pop(0) if len(programmed) > 1 else programmed[0]


def _handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
            return  # keep test output clean

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            parts = urlsplit(self.path)
            request = Request(
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
            )
            response = server.next_response(request)
            if response.etag and request.headers.get("if-none-match") == response.etag:
                self.send_response(304)
                self.send_header("ETag", response.etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if response.etag:
                self.send_header("ETag", response.etag)
            if response.content_length:
                self.send_header("Content-Length", str(len(response.body)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            try:
                if response.trickle_s is None:
                    self.wfile.write(response.body)
                    return
                for i in range(len(response.body)):
                    if server.stopping.is_set():
                        return
                    self.wfile.write(response.body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(response.trickle_s)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (deadline, cap): that is the point of the test

    return Handler


@contextmanager
def running_server() -> Iterator[FeedServer]:
    """A started FeedServer, stopped on exit (wrap it in a fixture in the test module)."""
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()
