"""The operator's read of stored papers: all since a date, or one by id, every stored field."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from digest.sources.ids import paper_key
from digest.store.papers import get_paper, list_papers

if TYPE_CHECKING:
    from digest.bootstrap import Services


def paper_dict(paper: Any) -> dict[str, Any]:
    """Every stored field of a paper as JSON-ready values (datetimes as ISO strings)."""
    columns = type(paper).__table__.columns  # table order: id, key, arxiv_id, ...
    data = {c.name: getattr(paper, c.name) for c in columns}
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}


def papers_since(services: Services, since: datetime | None) -> list[dict[str, Any]]:
    """Every stored paper first seen at or after `since` (all when None), newest first."""
    with services.reading() as tx:
        return [paper_dict(p) for p in list_papers(tx, since=since)]


def paper(services: Services, paper_id: str) -> dict[str, Any] | None:
    """One paper by arXiv id (any form) or stored key, or None."""
    with services.reading() as tx:
        found = get_paper(tx, paper_key(paper_id))
        return paper_dict(found) if found else None
