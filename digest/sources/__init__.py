"""Source parsers, one module per kind: fetched bytes in, PaperRecords out (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Callable

from digest.sources import arxiv_api, arxiv_rss, feed, hf_daily
from digest.sources.base import PaperRecord, ParseResult
from digest.sources.xmlfeed import MAX_ITEMS, one_line

__all__ = ["KINDS", "PARSERS", "PaperRecord", "ParseResult", "parse"]

PARSERS: dict[str, Callable[..., ParseResult]] = {
    arxiv_rss.KIND: arxiv_rss.parse,
    arxiv_api.KIND: arxiv_api.parse,
    hf_daily.KIND: hf_daily.parse,
    feed.KIND: feed.parse,
}
KINDS: tuple[str, ...] = tuple(PARSERS)


def parse(
    kind: str, data: bytes, *, source: str | None = None, max_items: int = MAX_ITEMS
) -> ParseResult:
    """Parse `data` as a document of `kind`; an unknown kind or any parser bug becomes `error`."""
    parser = PARSERS.get(kind)
    if parser is None:
        return ParseResult(error=f"unknown source kind {kind!r} (one of {', '.join(KINDS)})")
    try:
        return parser(data, source=source or kind, max_items=max_items)
    except Exception as exc:  # a parser bug must fail one source, never the run
        return ParseResult(error=f"parser error: {type(exc).__name__}: {one_line(exc)}")
