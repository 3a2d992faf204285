"""What an email or page shows of one paper, built once per paper per edition. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digest.texts import unicode_text

MAX_AUTHORS = 3
HF_PAPERS = "https://huggingface.co/papers/"


@dataclass(frozen=True, slots=True)
class PaperView:
    """What an email shows of one paper; built once per edition, TeX already Unicode."""

    key: str
    title: str
    url: str
    authors_line: str
    tldr: str
    categories: tuple[str, ...] = ()
    pdf_url: str | None = None
    code_url: str | None = None
    upvotes: int | None = None
    github_stars: int | None = None
    arxiv_id: str | None = None
    # The date the source gives (arXiv announcement or publication), e.g. "28 Apr 2025".
    date: str = ""
    hf_url: str | None = None

    @property
    def ident(self) -> str:
        """The paper's id and date on one line: "arXiv:2504.17830 · 28 Apr 2025"."""
        name = f"arXiv:{self.arxiv_id}" if self.arxiv_id else ""
        return " · ".join(part for part in (name, self.date) if part)

    @property
    def meta(self) -> str:
        """Authors, categories, upvotes and stars, whichever are known, on one line."""
        parts = [self.authors_line, ", ".join(self.categories)]
        if self.upvotes:
            parts.append(f"▲ {self.upvotes} upvote{'s' if self.upvotes != 1 else ''}")
        if self.github_stars:
            parts.append(
                f"★ {self.github_stars} GitHub star{'s' if self.github_stars != 1 else ''}"
            )
        return " · ".join(part for part in parts if part)


def authors_line(authors: Sequence[str]) -> str:
    if not authors:
        return ""
    if len(authors) <= MAX_AUTHORS:
        return ", ".join(authors)
    return ", ".join(authors[:MAX_AUTHORS]) + " et al."


def tldr(abstract: str, ai_summary: str | None, *, max_chars: int) -> str:
    """The source's AI summary if any, else the abstract's first sentences cut on a word."""
    text = (ai_summary or abstract or "").strip()
    if len(text) <= max_chars:
        return text
    sentences = re.split(r"(?<=[.!?])\s+", text)
    out = ""
    for sentence in sentences:
        if len(out) + len(sentence) + 1 > max_chars:
            break
        out = f"{out} {sentence}".strip()
    if out:
        return out
    cut = text[:max_chars].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def safe_url(url: str | None) -> str | None:
    """Only http(s) links reach an email; javascript:, data: and the rest are dropped."""
    if not url:
        return None
    return url if re.match(r"^https?://[^\s<>\"']+$", url) else None


def _date(value: datetime | None) -> str:
    return f"{value:%d %b %Y}".lstrip("0") if value else ""


def paper_view(paper: Any, *, max_tldr_chars: int) -> PaperView:
    """A PaperView from a stored Paper (or anything with the same attributes); its TeX is
    shown as Unicode (texts.py), converted here, once per paper per edition.

    The title links to the arXiv abstract page when the paper has an arXiv id; the Hugging Face
    page is linked when the paper is on Hugging Face (it came from there, or has upvotes)."""
    arxiv_id = getattr(paper, "arxiv_id", None)
    stored = safe_url(paper.url)
    abstract_page = f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else None
    url = abstract_page or stored or ""
    pdf = safe_url(paper.pdf_url) or (f"https://arxiv.org/pdf/{arxiv_id}" if arxiv_id else None)
    hf_url = stored if stored and stored.startswith(HF_PAPERS) else None
    if hf_url is None and arxiv_id and paper.upvotes is not None:
        hf_url = HF_PAPERS + arxiv_id
    return PaperView(
        key=paper.key,
        title=unicode_text(paper.title),
        url=url,
        authors_line=authors_line([unicode_text(a) for a in paper.authors or []]),
        tldr=tldr(unicode_text(paper.abstract), paper.ai_summary, max_chars=max_tldr_chars),
        categories=tuple((paper.categories or [])[:4]),
        pdf_url=pdf,
        code_url=safe_url(paper.code_url),
        upvotes=paper.upvotes,
        github_stars=paper.github_stars,
        arxiv_id=arxiv_id,
        date=_date(getattr(paper, "published", None) or getattr(paper, "first_seen", None)),
        hf_url=hf_url,
    )
