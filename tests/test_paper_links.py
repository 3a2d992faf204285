"""Each paper in a sent digest shows its arXiv id, date and links; the subject names the count
and the top paper, and that count agrees with the headline and the papers listed (issue 15).
Dark mode keeps the footer links and dividers readable (measured in Chromium)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from sqlmodel import Session, select

from digest import bootstrap
from digest.db import make_engine, session_scope, upgrade
from digest.models import Delivery, Paper
from digest.settings import DeliverySettings, Settings, SmtpSettings
from digest.smtpd.sink import SmtpSink
from digest.store import subscribers as subscriber_store
from digest.texts import unicode_text
from digest.usecases.editions import plan_edition, send_edition
from digest.usecases.ingest import ingest_file
from tests.browser import ARGS, CHROMIUM, need_chromium

FIXTURES = Path(__file__).parent / "fixtures"
HF_DAILY = FIXTURES / "hf_daily_papers_api_limit30_2026-06-12.json"
QUANT_PH = FIXTURES / "arxiv_rss2_quant-ph_2025-04-28.xml"
NOW = datetime(2026, 6, 12, 8, 0, tzinfo=UTC)


def _sent_digest(tmp_path: Path, sink: SmtpSink, interests: str):
    url = f"sqlite:///{tmp_path / 'links.db'}"
    settings = Settings(
        mode="dev",
        database_url=url,
        smtp=SmtpSettings(host=sink.host, port=sink.port, timeout_s=10),
        delivery=DeliverySettings(backoff_base_s=0.01),
    )
    services = bootstrap.build(settings, engine=make_engine(url))
    upgrade(services.engine)
    earlier = NOW - timedelta(hours=6)
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf-daily", now=earlier)
    ingest_file(services, QUANT_PH, kind="arxiv-rss", source="arxiv", now=earlier)
    with session_scope(services.engine) as session:
        subscriber_store.add_subscriber(
            session, email="ada@example.com", interests=interests, confirmed=True, now=earlier
        )
    edition, _ = plan_edition(services, now=NOW, edition_date=NOW.date())
    asyncio.run(send_edition(services, edition, now=NOW))
    with Session(services.engine) as session:
        [delivery] = session.exec(select(Delivery)).all()
        papers = {p.key: p for p in session.exec(select(Paper))}
    services.close()
    [mail] = sink.messages
    message = email.message_from_bytes(mail.data, policy=email.policy.default)
    return message, [papers[k] for k in delivery.paper_keys]


@pytest.mark.parametrize("interests", ["language model agents and video", "quantum sensing"])
def test_each_paper_shows_its_id_date_and_links_and_the_counts_agree(
    tmp_path: Path, smtp_sink: SmtpSink, interests: str
) -> None:
    message, shown = _sent_digest(tmp_path, smtp_sink, interests)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    count = len(shown)

    subject = message["Subject"]
    top = unicode_text(shown[0].title)
    assert subject.startswith(f"{count} new for you: {top[:40]}") and subject.endswith(", …")
    headline = re.search(r'<h1 class="headline"[^>]*>(.*?)</h1>', html, re.S).group(1)
    assert unescape(headline).startswith(f"{count} new papers")
    assert html.count('class="paper"') == count
    assert len(re.findall(r"^\d+\. ", text, re.M)) == count
    for paper in shown:
        block = html[html.index(f"arXiv:{paper.arxiv_id}") :][:4000]
        assert f"https://arxiv.org/abs/{paper.arxiv_id}" in html
        assert f'href="https://arxiv.org/pdf/{paper.arxiv_id}' in block
        assert f"{paper.published:%b %Y}" in block.split("</p>")[0]
        assert f"arXiv:{paper.arxiv_id}" in text
        if paper.upvotes is not None:  # on Hugging Face: its page, and the upvotes
            assert f"https://huggingface.co/papers/{paper.arxiv_id}" in block
            if paper.upvotes:
                assert f"▲ {paper.upvotes} upvote" in block
        else:
            assert "huggingface.co" not in block.split('class="paper"')[0]
        if paper.code_url:
            assert f'href="{paper.code_url}"' in block
            if paper.github_stars:
                assert f"★ {paper.github_stars} GitHub star" in block


def _luminance(rgb: tuple[float, ...]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _rgb(css: str) -> tuple[float, ...]:
    return tuple(float(v) for v in re.findall(r"[\d.]+", css)[:3])


@pytest.mark.browser
def test_dark_mode_footer_links_and_dividers_are_readable(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    need_chromium()
    from playwright.sync_api import sync_playwright

    message, _ = _sent_digest(tmp_path, smtp_sink, "language model agents")
    html = message.get_body(("html",)).get_content()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(color_scheme="dark")
        page.set_content(html)
        colours = page.evaluate(
            """() => {
              const style = (sel) => getComputedStyle(document.querySelector(sel));
              return {
                frame: style('table.frame').backgroundColor,
                footlink: style('a.footlink').color,
                footer: style('td.footer').color,
                divider: style('td.paper').borderTopColor,
                footerDivider: style('td.footer').borderTopColor,
              };
            }"""
        )
        browser.close()
    frame = _rgb(colours["frame"])
    assert _luminance(frame) < 0.05, colours  # the dark theme is on
    assert _contrast(_rgb(colours["footlink"]), frame) >= 4.5, colours
    assert _contrast(_rgb(colours["footer"]), frame) >= 4.5, colours
    # Dividers are decoration: visible, not text (WCAG 1.4.11 asks 3:1 of UI parts).
    assert _contrast(_rgb(colours["divider"]), frame) >= 1.5, colours
    assert _contrast(_rgb(colours["footerDivider"]), frame) >= 1.5, colours


@pytest.mark.parametrize(
    "subject",
    [
        "10 new for you: Optical Schrödinger cat states generation using cubic phase resource, …",
        "3 new for you: " + "é" * 90 + ", …",
        "1 new for you: 😀 " * 6,
        "2 new for you: Hajdušek – α-stable laws, …",
    ],
)
def test_non_ascii_subjects_are_encoded_words_that_parse_back(subject: str) -> None:
    from digest.render import build_message

    raw = build_message(
        sender="Digest <d@example.com>",
        to="ada@example.com",
        subject=subject,
        text="x",
        html=None,
        message_id="<m@example.com>",
        date=NOW,
    )
    head = raw[: raw.index(b"\r\n\r\n")]
    assert head.isascii() and max(len(line) for line in head.split(b"\r\n")) <= 78
    assert email.message_from_bytes(raw, policy=email.policy.default)["Subject"] == subject
