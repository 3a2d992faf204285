"""What leaves us is a standard, safe, signed message (RELIABILITY.md R2-R6)."""

from __future__ import annotations

import random
import re
import subprocess
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from pathlib import Path
from types import SimpleNamespace

import dkim
import pytest
from markupsafe import escape

from digest import bootstrap
from digest.models import Edition, Subscriber
from digest.ranking import Pick, Profile
from digest.render import (
    EditionRenderer,
    build_message,
    make_environment,
    message_id,
    paper_view,
)
from digest.settings import PROJECT_ROOT, EmailSettings, RankingSettings, Settings
from digest.signing import DkimSigner
from digest.usecases.digests import EditionContext, compose_message, render_for
from tests.browser import ARGS, CHROMIUM, need_chromium

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 24, 7, tzinfo=UTC)
HOSTILE = [
    '<script>document.title="PWNED"</script>',
    "<img src=x onerror=\"document.body.insertAdjacentHTML('beforeend','<i id=pwned></i>')\">",
    '"><svg onload="document.title=\'PWNED\'">',
    "<a href=\"javascript:document.title='PWNED'\">click</a>",
    "<form action=https://evil.example><input name=x></form>",
    "<div style=\"width:expression(document.title='PWNED')\">",
]


def _paper(i: int, title: str, abstract: str, **extra: object) -> SimpleNamespace:
    values = dict(
        key=f"2611.{i:05d}",
        arxiv_id=f"2611.{i:05d}",
        title=title,
        abstract=abstract,
        authors=["Ada Lovelace", "Zoë Müller"],
        categories=["cs.LG"],
        url=None,
        pdf_url=None,
        code_url=None,
        upvotes=3,
        github_stars=None,
        ai_summary=None,
    )
    values.update(extra)
    return SimpleNamespace(**values)


def _digest(services, papers, *, subscriber_id: int = 7, interests: str = "ml") -> tuple:
    views = {p.key: paper_view(p, max_tldr_chars=320) for p in papers}
    renderer = EditionRenderer(
        env=services.templates,
        edition_date=date(2026, 11, 24),
        postal_address=services.settings.email.postal_address,
    )
    context = EditionContext(Edition(id=3, edition_date=date(2026, 11, 24)), [], views, renderer)
    subscriber = Subscriber(
        id=subscriber_id, email=f"reader{subscriber_id}@example.com", interests=interests
    )
    picks = [
        Pick(id=p.key, score=0.5, relevance=0.5, trending=0.1, why="matches: x") for p in papers
    ]
    digest, keys, links = render_for(
        services, context, subscriber, picks, Profile(user="7", interests=interests)
    )
    mid = message_id(edition_id=3, subscriber_id=subscriber_id, domain="d.example", secret="k")
    raw = compose_message(
        services, subscriber=subscriber, digest=digest, links=links, msg_id=mid, now=NOW
    )
    return digest, raw, links


@pytest.fixture
def services(tmp_path: Path):
    built = bootstrap.build(
        Settings(
            mode="dev",
            database_url=f"sqlite:///{tmp_path / 'x.db'}",
            ranking=RankingSettings(papers_per_digest=25),
        )
    )
    yield built
    built.close()


def _sample(count: int, seed: int = 0) -> list[SimpleNamespace]:
    import json

    rows = [
        json.loads(line)
        for line in (FIXTURES / "papers-sample-small.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    rng = random.Random(seed)
    return [
        _paper(i, row["title"], row["abstract"]) for i, row in enumerate(rng.sample(rows, count))
    ]


def test_text_and_html_parts_agree_on_every_random_digest(services) -> None:
    """R3: 100 random digests: same titles, unsubscribe URL and postal address in both parts."""
    for seed in range(100):
        papers = _sample(random.Random(seed).randint(1, 12), seed)
        digest, raw, links = _digest(services, papers, subscriber_id=seed + 1)
        message = message_from_bytes(raw, policy=policy.default)
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()

        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        for paper in papers:
            assert paper.title in text
            assert str(escape(paper.title)) in html
        for part in (text, html):
            assert links.unsubscribe in part
            assert services.settings.email.postal_address in part


def test_a_full_digest_stays_under_the_gmail_clipping_size(services) -> None:
    """R4: 25 papers with the longest sample abstracts: HTML <= 90 KiB, message <= 200 KiB."""
    longest = sorted(_sample(120), key=lambda p: len(p.abstract))[-25:]
    for paper in longest:
        paper.code_url = "https://github.com/example/" + "x" * 40
        paper.github_stars = 1234

    digest, raw, _ = _digest(services, longest)

    assert len(digest.html.encode("utf-8")) <= 90 * 1024
    assert len(raw) <= 200 * 1024


def test_headers_follow_rfc_8058_and_list_rules(services) -> None:
    """R5: List-Unsubscribe (https + mailto, one line), the One-Click post, List-Id, Date, ids."""
    _, raw, links = _digest(services, _sample(3))
    message = message_from_bytes(raw, policy=policy.default)
    header_block = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")

    assert re.search(r"^List-Unsubscribe: <https?://[^>]+>, <mailto:[^>]+>\r?$", header_block, re.M)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == services.settings.email.list_id
    assert message["Message-ID"] == message_id(
        edition_id=3, subscriber_id=7, domain="d.example", secret="k"
    )
    assert message["Date"].datetime == NOW
    assert links.unsubscribe in message["List-Unsubscribe"]


def test_non_ascii_headers_are_encoded_and_round_trip() -> None:
    """R6: a non-ASCII sender name and subject are RFC 2047 encoded; no line over 998 octets."""
    raw = build_message(
        sender="Zürich Papers — Digest <digest@d.example>",
        to="zoe@example.com",
        subject="Trending papers: Économie & Ökologie",
        text="t",
        html="<p>h</p>",
        message_id="<m@d.example>",
        date=NOW,
    )
    message = message_from_bytes(raw, policy=policy.default)

    assert raw.isascii() is False or b"=?utf-8?" in raw
    assert message["Subject"] == "Trending papers: Économie & Ökologie"
    assert message["From"].addresses[0].display_name == "Zürich Papers — Digest"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    folder = tmp_path_factory.mktemp("dkim")
    key = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    import base64

    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_dkim_signature_covers_both_unsubscribe_headers_and_verifies(
    tmp_path: Path, dkim_key
) -> None:
    """R5: DKIM verifies offline; tampering with either List-Unsubscribe header breaks it."""
    key_path, dns_record = dkim_key
    settings = Settings(
        mode="dev",
        database_url=f"sqlite:///{tmp_path / 'd.db'}",
        email=EmailSettings(
            dkim_domain="d.example", dkim_selector="digest", dkim_key_path=key_path
        ),
    )
    services = bootstrap.build(settings)
    assert isinstance(services.dkim, DkimSigner)
    _, raw, _ = _digest(services, _sample(3))

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return dns_record if name == b"digest._domainkey.d.example." else b""

    signature = raw.split(b"\r\n\r\n", 1)[0].decode()
    signed = re.search(r"h=([^;]+);", signature.replace("\r\n", "").replace(" ", "")).group(1)
    assert "list-unsubscribe" in signed.split(":")
    assert "list-unsubscribe-post" in signed.split(":")
    assert dkim.verify(raw, dnsfunc=dns)
    tampered = raw.replace(b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Two-Clicks")
    assert not dkim.verify(tampered, dnsfunc=dns)
    tampered = re.sub(rb"(List-Unsubscribe: <https?://)", rb"\1evil.", raw, count=1)
    assert not dkim.verify(tampered, dnsfunc=dns)
    services.close()


@pytest.mark.browser
def test_hostile_feed_text_stays_inert_in_a_real_browser(services, tmp_path: Path) -> None:
    """R2: script, event handlers, javascript: links and forms from feeds never run or render."""
    need_chromium()
    papers = [
        _paper(
            i,
            f"Title {payload}",
            f"Abstract {payload}",
            url="javascript:document.title='PWNED'",
            code_url=payload,
        )
        for i, payload in enumerate(HOSTILE)
    ]
    digest, _, _ = _digest(services, papers, interests=HOSTILE[0])
    page = tmp_path / "digest.html"
    page.write_text(digest.html, encoding="utf-8")

    dom = subprocess.run(
        [
            str(CHROMIUM),
            *ARGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout

    assert "<title>PWNED" not in dom and 'id="pwned"' not in dom
    assert "<script>document" not in dom and "<form" not in dom
    assert not [href for href in _hrefs(dom) if not href.startswith(("https://", "http://"))]
    assert "Title &lt;script&gt;" in dom


def _hrefs(document: str) -> list[str]:
    """The href of every real <a> element (not text that merely looks like one)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                found.extend(value or "" for name, value in attrs if name == "href")

    Links().feed(document)
    return found


def test_templates_dir_is_the_projects() -> None:
    assert make_environment(PROJECT_ROOT / "templates").get_template("email/digest.html")
