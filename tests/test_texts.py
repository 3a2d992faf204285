"""TeX shown as Unicode (issue 15): the recorded quant-ph feed, through storage, rendering and
the subject line; math with no plain form stays as its TeX, whole."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from digest import bootstrap
from digest.db import upgrade
from digest.models import Paper
from digest.render import paper_view
from digest.settings import Settings
from digest.texts import math_text, unicode_text
from digest.usecases.ingest import ingest_file

QUANT_PH = Path(__file__).parent / "fixtures" / "arxiv_rss2_quant-ph_2025-04-28.xml"
# Accent and letter commands as arXiv writes them: \"o, \'e, \v{s}, {\l}, {\o}, \c{c}, \~n.
TEX_ACCENT = re.compile(r"\\[\"'`^~=.vuHcdbkr]\s*\{?[A-Za-z]|\{\\[lLoOij]\}|\\ss\b")


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        (r"Schr\"odinger", "Schrödinger"),
        (r"Hajdu\v{s}ek", "Hajdušek"),
        (r"$\alpha$-stable", "α-stable"),
        (r"Pawe{\l} M{\o}lmer and Gon\c{c}alves", "Paweł Mølmer and Gonçalves"),
        (r"$\text{GHZ}_3$ states with $n\geq6$", "GHZ₃ states with n≥6"),
        (r"$|g|\to\infty$ and $L^2(\mathbb{R})$", "|g|→∞ and L²(ℝ)"),
        (r"in 50% of runs", "in 50% of runs"),
        ("costs $5 and $6", "costs $5 and $6"),
        ("plain title, nothing to do", "plain title, nothing to do"),
    ],
)
def test_tex_is_shown_as_unicode(source: str, shown: str) -> None:
    assert unicode_text(source) == shown


@pytest.mark.parametrize(
    "source",
    [r"$\mathbf{A}^2$", r"$\Gamma_\mathrm{c}$", r"$\{O_m\}_{m\ge 1}$", r"$x^{3/2}$", r"\(T_w\)"],
)
def test_math_without_a_plain_form_stays_whole_tex(source: str) -> None:
    assert unicode_text(f"the {source} term") == f"the {source} term"
    inner = source.strip("$")
    if not inner.startswith("\\("):
        assert math_text(inner) is None


def test_the_recorded_quant_ph_feed_reads_as_unicode(tmp_path: Path) -> None:
    services = bootstrap.build(
        Settings(mode="dev", database_url=f"sqlite:///{tmp_path / 'tex.db'}")
    )
    engine = services.engine
    upgrade(engine)
    ingest_file(services, QUANT_PH, kind="arxiv-rss", source="arxiv", now=datetime.now(UTC))
    with Session(engine) as session:
        papers = session.exec(select(Paper)).all()
    services.close()
    with_tex = [p for p in papers if any(TEX_ACCENT.search(t) for t in [p.title, *p.authors])]
    # Stored as the source wrote it: the feed's TeX is kept.
    assert len(with_tex) >= 20
    for paper in papers:
        view = paper_view(paper, max_tldr_chars=10_000)
        for shown in (view.title, view.authors_line, view.tldr):
            # Never half-converted: any TeX left is a whole $...$ or \(...\) segment.
            outside = re.sub(r"\$[^$]+\$|\\\(.+?\\\)", "", shown)
            assert "\\" not in outside, shown
            assert not TEX_ACCENT.search(outside), shown
    authors = " ".join(unicode_text(a) for p in with_tex for a in p.authors)
    assert "Hajdušek" in authors and "Mølmer" in authors
    titles = {p.key: paper_view(p, max_tldr_chars=320).title for p in papers}
    assert any("Schrödinger" in t for t in titles.values())
