"""Rendering is pure: templates in, HTML/text/MIME out. Autoescape everywhere; MIME parses back."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from digest.render import (
    DigestItem,
    DigestLinks,
    EditionRenderer,
    PaperView,
    build_message,
    make_environment,
    message_id,
    safe_url,
    tldr,
)
from digest.settings import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "templates"
LINKS = DigestLinks(
    manage="https://d.example/manage/t",
    unsubscribe="https://d.example/u/t",
    view="https://d.example/view/t",
)
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def _item(title: str = "A paper", abstract: str = "It works.") -> DigestItem:
    view = PaperView(
        key=f"key-{title}",
        title=title,
        url="https://arxiv.org/abs/2504.00001",
        authors_line="Ada Lovelace",
        tldr=abstract,
        categories=("cs.LG",),
        pdf_url="https://arxiv.org/pdf/2504.00001",
        upvotes=12,
    )
    return DigestItem(
        view, "matches: quantization", "https://d.example/f/up", "https://d.example/f/down"
    )


@pytest.fixture
def renderer() -> EditionRenderer:
    return EditionRenderer(
        env=make_environment(TEMPLATES),
        edition_date=date(2026, 11, 24),
        postal_address="1 Example Street",
    )


@pytest.mark.parametrize(
    "name", sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html"))
)
def test_every_html_template_is_autoescaped(name: str) -> None:
    env = make_environment(TEMPLATES)

    assert env.autoescape(name) is True


def test_no_template_marks_anything_safe() -> None:
    for path in TEMPLATES.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert "|safe" not in text.replace(" ", ""), path
            assert "Markup(" not in text, path


def test_hostile_feed_text_renders_inert(renderer: EditionRenderer) -> None:
    digest = renderer.render(items=[_item(HOSTILE, HOSTILE)], interests=HOSTILE, links=LINKS)

    assert "<script>" not in digest.html
    assert "onerror=" not in digest.html.replace("onerror=&#34;", "")
    assert "&lt;script&gt;" in digest.html


def test_css_is_inlined_once_at_load(renderer: EditionRenderer) -> None:
    digest = renderer.render(items=[_item()], interests="x", links=LINKS)

    assert 'class="title"' in digest.html and "font-weight: bold" in digest.html
    assert "prefers-color-scheme: dark" in digest.html


def test_text_and_html_carry_the_same_papers_and_the_unsubscribe_link(renderer) -> None:
    digest = renderer.render(
        items=[_item("Low-bit LLMs"), _item("Sparse attention")], interests="llm", links=LINKS
    )

    for part in (digest.html, digest.text):
        assert "Low-bit LLMs" in part and "Sparse attention" in part
        assert LINKS.unsubscribe in part
        assert "1 Example Street" in part


def test_tldr_is_cut_on_a_sentence_or_word() -> None:
    text = "First sentence here. Second one is longer than the limit allows for sure."

    assert tldr(text, None, max_chars=30) == "First sentence here."
    assert tldr("word " * 40, None, max_chars=50).endswith("…")
    assert tldr(text, "An AI summary.", max_chars=30) == "An AI summary."


def test_only_http_links_survive() -> None:
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("data:text/html,x") is None
    assert safe_url("https://arxiv.org/abs/1") == "https://arxiv.org/abs/1"


def test_built_message_parses_back_identically() -> None:
    mid = message_id(edition_id=3, subscriber_id=7, domain="d.example", secret="k")
    html = "<p>Grüße — café ☕ " + "x" * 200 + "</p>"
    text = "Grüße — café ☕\n" + "long line " * 30

    raw = build_message(
        sender="Trending Papers <digest@d.example>",
        to="ada@example.com",
        subject="Trending papers: 10 papers",
        text=text,
        html=html,
        message_id=mid,
        date=datetime(2026, 11, 24, 7, tzinfo=UTC),
        headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )
    parsed = message_from_bytes(raw, policy=policy.default)

    assert parsed["Message-ID"] == mid
    assert parsed["To"] == "ada@example.com"

    # SMTP bodies are CRLF; the stdlib hands CRLF back for its own messages too.
    def body(kind: str) -> str:
        return parsed.get_body((kind,)).get_content().replace("\r\n", "\n").rstrip("\n")

    assert body("plain") == text
    assert body("html") == html
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_message_id_is_deterministic_per_edition_and_subscriber() -> None:
    one = message_id(edition_id=1, subscriber_id=2, domain="d", secret="k")

    assert one == message_id(edition_id=1, subscriber_id=2, domain="d", secret="k")
    assert one != message_id(edition_id=1, subscriber_id=3, domain="d", secret="k")


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError):
        build_message(
            sender="a@b.c",
            to="x@y.z\r\nBcc: victim@example.com",
            subject="s",
            text="t",
            html=None,
            message_id="<m@d>",
            date=datetime.now(UTC),
        )
    with pytest.raises(ValueError):
        build_message(
            sender="a@b.c",
            to="x@y.z",
            subject="s\nBcc: v@e.com",
            text="t",
            html=None,
            message_id="<m@d>",
            date=datetime.now(UTC),
        )


def test_templates_dir_exists_relative_to_the_package() -> None:
    assert (Path(TEMPLATES) / "email" / "digest.html").is_file()
