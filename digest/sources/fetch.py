"""Polite, bounded HTTP fetching of feeds (httpx): the only network I/O of ingestion.

Every request has connect/read timeouts and a total deadline, a streamed byte cap, manual
redirects (http/https, allow-listed hosts only), retries with backoff and jitter on 429/5xx
honouring Retry-After, and at most one request per interval and one connection per host.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from digest.settings import FetchSettings

REDIRECTS = (301, 302, 303, 307, 308)
Sleep = Callable[[float], Awaitable[Any]]
Clock = Callable[[], float]


class FetchError(Exception):
    """One request could not produce a usable response; the message is the one-line reason."""


@dataclass
class FetchResult:
    """The outcome of one logical GET (redirects and retries included); `error` set means failed."""

    url: str
    final_url: str = ""
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    not_modified: bool = False
    error: str | None = None
    attempts: int = 0
    requests: int = 0
    seconds: float = 0.0

    @property
    def etag(self) -> str | None:
        """The response's ETag validator, if any."""
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        """The response's Last-Modified validator, if any."""
        return self.headers.get("last-modified")


def host_of(url: str) -> str:
    """The lower-case host name of `url` ("" when it has none)."""
    try:
        return (httpx.URL(url).host or "").lower()
    except (httpx.InvalidURL, TypeError, ValueError):
        return ""


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HostLimiter:
    """At most one request in flight per host, and request starts at least `interval` apart."""

    def __init__(self, interval: float, *, sleep: Sleep, clock: Clock) -> None:
        self.interval = interval
        self._sleep = sleep
        self._clock = clock
        self._last: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def slot(self, host: str, interval: float | None = None) -> AsyncIterator[None]:
        """Hold the host's single slot, first waiting out its minimum interval."""
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            gap = self.interval if interval is None else max(self.interval, interval)
            last = self._last.get(host)
            if last is not None:
                delay = last + gap - self._clock()
                if delay > 0:
                    await self._sleep(delay)
            self._last[host] = self._clock()
            yield


def make_client(settings: FetchSettings) -> httpx.AsyncClient:
    """The HTTP client of one run: the service's timeouts and user agent, redirects by hand."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.read_timeout_s,
        write=settings.read_timeout_s,
        pool=settings.connect_timeout_s,
    )
    return httpx.AsyncClient(
        timeout=timeout,
        headers={"User-Agent": f"{settings.user_agent} (+mailto:{settings.contact})"},
        follow_redirects=False,
        # trust_env off: a proxy from the environment would defeat the host allow-list.
        trust_env=False,
    )


class Fetcher:
    """One HTTP client per run with the safety rules of RELIABILITY.md §4 applied to every GET."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        allowed_hosts: Iterable[str],
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.allowed_hosts = {h.lower() for h in allowed_hosts if h}
        self.client = make_client(settings)
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self.limiter = HostLimiter(settings.min_interval_per_host_s, sleep=sleep, clock=clock)

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the run's HTTP client."""
        await self.client.aclose()

    def check_url(self, url: str) -> httpx.URL:
        """The parsed URL if it is http/https on an allowed host; FetchError (SSRF guard) if not."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise FetchError(f"refused: not a valid URL: {url[:200]!r}") from exc
        if parsed.scheme not in ("http", "https"):
            raise FetchError(f"refused: scheme {parsed.scheme or '(none)'!r} is not http/https")
        host = (parsed.host or "").lower()
        if host not in self.allowed_hosts:
            raise FetchError(f"refused: host {host or '(none)'!r} is not an allowed feed host")
        return parsed

    async def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        min_interval: float | None = None,
    ) -> FetchResult:
        """GET `url` with every limit applied; never raises, the reason is in `error`."""
        started = self._clock()
        wall = time.perf_counter()
        result = FetchResult(url=url)
        headers = {"Accept": "*/*"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        while True:
            result.attempts += 1
            try:
                await asyncio.wait_for(
                    self._follow(url, headers, result, min_interval), self.settings.deadline_s
                )
            except TimeoutError:
                result.error = f"deadline of {self.settings.deadline_s:g}s exceeded for {url}"
            except FetchError as exc:
                result.error = str(exc)
            except httpx.TimeoutException as exc:
                result.error = f"timed out ({type(exc).__name__}) for {url}"
            except httpx.HTTPError as exc:
                result.error = f"HTTP error {type(exc).__name__}: {str(exc)[:200]}"
            if result.error or not self._retryable(result.status):
                break
            if result.attempts > self.settings.retries:
                result.error = f"HTTP {result.status} after {result.attempts} attempts"
                break
            delay = retry_after_seconds(result.headers.get("retry-after"))
            if delay is None:
                base = self.settings.backoff_base_s * 2 ** (result.attempts - 1)
                delay = base + self._jitter() * self.settings.backoff_base_s
            if delay > self.settings.max_retry_after_s:
                result.error = (
                    f"HTTP {result.status}: asked to wait {delay:g}s, more than "
                    f"max_retry_after_s={self.settings.max_retry_after_s:g}"
                )
                break
            await self._sleep(delay)
        result.seconds = max(self._clock() - started, time.perf_counter() - wall)
        return result

    @staticmethod
    def _retryable(status: int | None) -> bool:
        return status is not None and (status == 429 or 500 <= status <= 599)

    async def _follow(
        self, url: str, headers: dict[str, str], result: FetchResult, min_interval: float | None
    ) -> None:
        """One attempt: follow up to max_redirects redirects by hand, checking every hop."""
        current = url
        seen: set[str] = set()
        for _hop in range(self.settings.max_redirects + 1):
            parsed = self.check_url(current)
            if current in seen:
                raise FetchError(f"redirect loop at {current}")
            seen.add(current)
            host = (parsed.host or "").lower()
            async with self.limiter.slot(host, min_interval):
                result.requests += 1
                async with self.client.stream(
                    "GET", parsed, headers=headers, follow_redirects=False
                ) as response:
                    result.status = response.status_code
                    result.final_url = str(response.url)
                    result.headers = {k.lower(): v for k, v in response.headers.items()}
                    if response.status_code in REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(f"HTTP {response.status_code} without Location")
                        try:
                            current = str(parsed.join(location))
                        except (httpx.InvalidURL, ValueError) as exc:
                            raise FetchError(f"bad redirect Location {location[:200]!r}") from exc
                        continue
                    if response.status_code == 304:
                        result.not_modified = True
                        result.body = b""
                        return
                    result.body = await self._read_capped(response)
                    return
        raise FetchError(f"more than {self.settings.max_redirects} redirects from {url}")

    async def _read_capped(self, response: httpx.Response) -> bytes:
        cap = self.settings.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise FetchError(f"body of {int(declared)} bytes exceeds the {cap}-byte cap")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                # Stop reading at once: a hostile or runaway body is cut at the cap, not buffered.
                raise FetchError(f"body exceeds the {cap}-byte cap (cut)")
            chunks.append(chunk)
        return b"".join(chunks)


@dataclass(frozen=True)
class Fetchers:
    """What the service holds to fetch: opens one Fetcher per run.

    Not a client: each run (a CLI command, a scheduler job) has its own event loop, and an httpx
    client's pool and the per-host locks belong to the loop that first used them. Tests build
    it with a clock and a sleep of their own, so waits are checked without being spent.
    """

    settings: FetchSettings
    sleep: Sleep = asyncio.sleep
    clock: Clock = time.monotonic

    def open(self, allowed_hosts: Iterable[str]) -> Fetcher:
        """A Fetcher that may contact `allowed_hosts` only; close it (async with) after the run."""
        return Fetcher(
            self.settings, allowed_hosts=allowed_hosts, sleep=self.sleep, clock=self.clock
        )


def with_params(url: str, **params: str | int) -> str:
    """`url` with these query parameters set (merged with those it carries)."""
    return str(httpx.URL(url).copy_merge_params({k: str(v) for k, v in params.items()}))


def http_failure(result: FetchResult) -> str:
    """The one-line reason of a response with a 4xx or 5xx status."""
    reason = httpx.codes.get_reason_phrase(result.status or 0)
    return f"HTTP {result.status} {reason}".strip() + f" from {result.final_url or result.url}"
