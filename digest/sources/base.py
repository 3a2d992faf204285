"""The plain record every source parser yields, and the outcome of parsing one document.

Parsers are pure: bytes in, records out. Fetching lives in sources/fetch.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class PaperRecord:
    """One paper as one source saw it, cleaned to plain text.

    `key` is the identity used to merge sources: the arXiv id without version when there is one
    (e.g. "2504.17830", "hep-th/9901001"), else "doi:<doi>" or "url:<canonical link>".
    `announce` is arXiv's announce type ("new", "cross", "replace", "replace-cross") or "new"
    for sources without one; replacements update a stored paper and are never announced.
    """

    key: str
    title: str
    source: str
    abstract: str = ""
    arxiv_id: str | None = None
    version: int | None = None
    doi: str | None = None
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    url: str | None = None
    pdf_url: str | None = None
    code_url: str | None = None
    upvotes: int | None = None
    github_stars: int | None = None
    comments: int | None = None
    ai_summary: str | None = None
    organization: str | None = None
    published: datetime | None = None
    announce: str = "new"


@dataclass(frozen=True, slots=True)
class ParseResult:
    """Records parsed from one document, what was skipped, and any problem worth recording.

    `error` set means the document was unusable (the source failed); `warnings` with records means
    it was read in part. `total` is the result count a paged API reports (arXiv's opensearch).
    """

    records: tuple[PaperRecord, ...] = ()
    skipped: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)
    error: str | None = None
    total: int | None = None


def cap_warnings(count: int, max_items: int) -> tuple[str, ...]:
    """The warning for a document with more items than the per-feed cap, if it has."""
    if count <= max_items:
        return ()
    return (f"feed has {count} items; cut at the cap of {max_items} (max_items_per_feed)",)
