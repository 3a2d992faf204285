"""A digest's subject and headline: one count, the papers listed, and the top paper's title."""

from __future__ import annotations

SUBJECT_TITLE_CHARS = 80


def _short(title: str, limit: int = SUBJECT_TITLE_CHARS) -> str:
    title = " ".join(title.split())
    if len(title) <= limit:
        return title
    return title[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def headline(count: int, matched: int) -> str:
    """'7 new papers for you' (or '7 new trending papers' when none matched the profile)."""
    papers = f"{count} new paper{'s' if count != 1 else ''}"
    return f"{papers} for you" if matched else f"{papers} trending"


def subject(count: int, top_title: str, *, is_test: bool = False) -> str:
    """'7 new for you: Universal quantum control over Rydberg atoms, …': the count is the
    number of papers listed, the same as the headline's."""
    prefix = "[TEST] " if is_test else ""
    if not count:
        return f"{prefix}Nothing new for you"
    more = ", …" if count > 1 else ""
    return f"{prefix}{count} new for you: {_short(top_title)}{more}"
