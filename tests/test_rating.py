"""Short rating links and one-click rating that link scanners cannot trigger (issue 15).

Real parts: an edition sent through the SMTP sink, the web app over TestClient (a scanner: GET
only, no script) and over uvicorn in headless Chromium (a person: with and without script).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlmodel import Session, select

from digest.models import Feedback, utcnow
from digest.smtpd.sink import SmtpSink, free_port
from digest.usecases.editions import plan_edition, send_edition
from digest.usecases.ingest import ingest_file
from tests.browser import ARGS, CHROMIUM, need_chromium
from tests.web_support import CSRF, Web, active_subscriber, build_services, with_web

FIXTURES = Path(__file__).parent / "fixtures"
HF_DAILY = FIXTURES / "hf_daily_papers_api_limit30_2026-06-12.json"
QUANT_PH = FIXTURES / "arxiv_rss2_quant-ph_2025-04-28.xml"
URL = re.compile(r"https?://\S+")


def _send_digest(services, smtp_sink: SmtpSink) -> str:
    """Ingest the recorded feeds, send one subscriber their digest, return its text part."""
    now = utcnow()
    ingest_file(services, HF_DAILY, kind="hf-daily", source="hf-daily", now=now)
    ingest_file(services, QUANT_PH, kind="arxiv-rss", source="arxiv", now=now)
    active_subscriber(services, "ada@example.com", "language model agents and quantum sensing")
    edition, _ = plan_edition(services, now=now, edition_date=now.date())
    report = asyncio.run(send_edition(services, edition, now=now))
    assert report.sent == 1
    [mail] = smtp_sink.messages
    message = message_from_bytes(mail.data, policy=policy.default)
    return message.get_body(("plain",)).get_content()


def _rating_urls(text: str, base: str) -> list[str]:
    return re.findall(rf"{re.escape(base)}/r/[A-Za-z0-9._-]+/\d+[ud]", text)


def _feedback(services) -> list[tuple[str, int]]:
    with Session(services.engine) as session:
        return [(f.paper_key, f.value) for f in session.exec(select(Feedback))]


@pytest.fixture
def web_services(settings):
    services = build_services(with_web(settings, base_url="http://127.0.0.1:8000"))
    yield services
    services.close()


def test_the_plain_text_is_mostly_reading_with_one_short_rating_line_per_paper(
    web_services, smtp_sink: SmtpSink
) -> None:
    text = _send_digest(web_services, smtp_sink)
    papers = len(re.findall(r"^\d+\. ", text, re.M))
    rating_lines = [line for line in text.splitlines() if line.strip().startswith("Rate: 👍")]
    ratings = _rating_urls(text, "http://127.0.0.1:8000")

    assert papers == 10 and len(rating_lines) == papers
    assert len(ratings) == 2 * papers
    assert max(len(u) for u in ratings) <= 70  # was 266-565 characters
    url_chars = sum(len(u) for u in URL.findall(text))
    rating_chars = sum(len(u) for u in ratings)
    assert rating_chars / len(text) < 0.2, rating_chars / len(text)  # was 49-67 %
    assert url_chars / len(text) < 0.5, url_chars / len(text)


def test_a_scanner_fetching_the_link_records_nothing_a_post_records_and_undoes(
    web_services, smtp_sink: SmtpSink
) -> None:
    text = _send_digest(web_services, smtp_sink)
    up = _rating_urls(text, "http://127.0.0.1:8000")[0].removeprefix("http://127.0.0.1:8000")
    web = Web(web_services)
    try:
        page = web.client.get(up)
        again = web.client.get(up)
        assert page.status_code == again.status_code == 200
        assert "data-autosubmit" in page.text and "Rate it 👍" in page.text
        assert _feedback(web_services) == []  # fetching is not rating

        token = CSRF.search(page.text).group(1)
        rated = web.client.post(up, data={"csrf_token": token})
        assert rated.status_code == 200 and "Undo" in rated.text
        [(key, value)] = _feedback(web_services)
        assert value == 1
        assert web.client.post(up, data={}).status_code == 403  # no CSRF, no rating
        web.client.post(f"{up}/undo", data={"csrf_token": token})
        assert _feedback(web_services) == [(key, 0)]  # undone: no rating stands

        forged = re.sub(r"\.[A-Za-z0-9_-]{16}/", ".AAAAAAAAAAAAAAAA/", up)
        assert web.client.get(forged).status_code == 400
        beyond = re.sub(r"/\d+u$", "/99u", up)
        assert web.client.get(beyond).status_code == 400
    finally:
        web.close()


@pytest.fixture
def live(settings) -> Iterator[tuple[str, object]]:
    need_chromium()
    import uvicorn

    from digest.web import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    services = build_services(with_web(settings, base_url=base))
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield base, services
    server.should_exit = True
    thread.join(timeout=10)
    services.close()


@pytest.mark.browser
def test_one_click_rates_in_chromium_with_undo_and_without_script_a_button(
    live, smtp_sink: SmtpSink
) -> None:
    from playwright.sync_api import sync_playwright

    base, services = live
    text = _send_digest(services, smtp_sink)
    urls = _rating_urls(text, base)
    up_first, down_second = urls[0], urls[3]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        page.goto(up_first)
        page.wait_for_selector("text=Thanks for rating")
        [(first_key, value)] = _feedback(services)
        assert value == 1
        undo = page.locator("button", has_text="Undo")
        more = page.locator("button", has_text="More like this")
        assert undo.is_visible() and more.is_visible()
        undo_box, more_box = undo.bounding_box(), more.bounding_box()
        assert abs(undo_box["y"] - more_box["y"]) < 1 and undo_box["height"] == more_box["height"]

        page.goto(down_second)
        page.wait_for_selector("text=Thanks for rating 👎")
        assert page.locator("button", has_text="More like this").count() == 0
        assert page.locator("button", has_text="Undo").is_visible()

        no_script = browser.new_context(java_script_enabled=False).new_page()
        no_script.goto(urls[4])
        assert no_script.locator("button", has_text="Rate it 👍").is_visible()
        assert len(_feedback(services)) == 2  # the page alone recorded nothing
        no_script.locator("button", has_text="Rate it 👍").click()
        no_script.wait_for_selector("text=Thanks for rating")
        assert len(_feedback(services)) == 3
        browser.close()
