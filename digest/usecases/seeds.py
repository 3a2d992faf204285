"""Seed papers the store does not hold yet: looked up by arXiv id through the arXiv API (the
polite fetcher) and stored as reference papers, so a profile's seeds count from its first
digest. A failed lookup loses nothing: the ids stay in the profile, and the next lookup (the
next `digest fetch`, or saving the profile again) tries again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from digest.settings import Settings
from digest.sources.fetch import host_of
from digest.sources.ids import normalize_arxiv_id
from digest.sources.xmlfeed import one_line
from digest.store.papers import papers_by_keys
from digest.store.subscribers import seeds_of_active
from digest.usecases.ingest import allowed_hosts, lookup_arxiv_ids

if TYPE_CHECKING:
    from digest.bootstrap import Services

log = logging.getLogger(__name__)

# Lookups from the CLI and the web's background jobs each open their own fetcher: one lock and
# the time of the last lookup keep this process to one arXiv API request per interval overall.
_POLITE = threading.Lock()
_last_lookup = [float("-inf")]


@dataclass
class SeedLookup:
    """What a lookup did: ids already stored, fetched now, and not found (with why)."""

    stored: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: str | None = None

    def message(self) -> str | None:
        """One line for a person when some seed could not be fetched, else None."""
        if not self.missing:
            return None
        why = self.error or "arXiv has no paper with that id"
        ids = ", ".join(self.missing)
        return (
            f"could not fetch seed paper(s) {ids} from arXiv ({why}); they stay in the profile "
            "and are looked up again at the next fetch"
        )


def not_stored(services: Services, ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """(stored, not stored) among the arXiv ids named by `ids`, version-less, each once."""
    wanted = list(dict.fromkeys(k for k in (normalize_arxiv_id(i) for i in ids) if k))
    with services.reading() as tx:
        held = papers_by_keys(tx, wanted)
    return [k for k in wanted if k in held], [k for k in wanted if k not in held]


async def fetch_missing(services: Services, ids: Sequence[str]) -> SeedLookup:
    """Look up and store the seeds of `ids` that the store does not hold; never raises on a
    network or API failure (the reason is in `SeedLookup.error`)."""
    settings = services.settings
    stored, missing = not_stored(services, ids)
    lookup = SeedLookup(stored=stored)
    if not missing:
        return lookup
    try:
        # The lookup stores what it finds itself (ingest's own transactions).
        result = await lookup_arxiv_ids(services, missing, api_url=settings.fetch.arxiv_api_url)
    except Exception as exc:  # the store or the network: reported, never raised
        result = None
        lookup.error = f"{type(exc).__name__}: {one_line(exc)}"
    found = {r.key for r in result.records} if result is not None else set()
    lookup.fetched = [k for k in missing if k in found]
    lookup.missing = [k for k in missing if k not in found]
    if result is not None and lookup.missing:
        lookup.error = result.error or (result.warnings[0] if result.warnings else None)
    if lookup.missing:
        log.info("seeds.not_fetched count=%d error=%s", len(lookup.missing), lookup.error)
    return lookup


# Seeds looked up again by one fetch run, at most: one API request, a bounded reply.
RETRY_LIMIT = 100


def _fetches_from_arxiv(settings: Settings) -> bool:
    """The API's host is allowed, or a source is on the same site (rss.arxiv.org for
    export.arxiv.org): this deployment already talks to arXiv."""
    api = host_of(settings.fetch.arxiv_api_url)
    site = ".".join(api.split(".")[-2:])
    hosts = allowed_hosts(settings)
    return bool(api) and (api in hosts or any(h.endswith("." + site) for h in hosts))


async def retry_missing(services: Services) -> SeedLookup:
    """The next fetch's second try: active subscribers' seeds still not stored are looked up
    again, only when this deployment fetches from arXiv already (so a test or a setup without
    arXiv sources never reaches out to it)."""
    if not _fetches_from_arxiv(services.settings):
        return SeedLookup()
    with services.reading() as tx:
        seeds = seeds_of_active(tx)
    return await fetch_missing(services, sorted(seeds)[:RETRY_LIMIT])


def fetch_missing_now(services: Services, ids: Sequence[str]) -> SeedLookup:
    """`fetch_missing` from synchronous code (the CLI, the web's background jobs), one lookup
    at a time and spaced by the fetch interval."""
    with _POLITE:
        wait = _last_lookup[0] + services.settings.fetch.min_interval_per_host_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            return asyncio.run(fetch_missing(services, ids))
        finally:
            _last_lookup[0] = time.monotonic()
