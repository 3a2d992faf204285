"""The website in headless Chromium against a real uvicorn server and the real SMTP sink.

One visitor's whole life: subscribe → confirmation mail → confirm → a test digest → manage →
rate → one-click unsubscribe and the page button. Plus W7: stored XSS payloads never run.
Screenshots (desktop and phone width) go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlmodel import Session, select

from digest.models import Feedback, Subscriber
from digest.smtpd.sink import free_port
from digest.usecases.previews import send_test_digest
from tests.browser import ARGS, CHROMIUM, need_chromium
from tests.web_support import XSS, add_papers, build_services, record, to, with_web, xss_pages

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


_need_chromium = need_chromium


@pytest.fixture
def live(settings) -> Iterator[tuple[str, object]]:
    """uvicorn serving create_app on 127.0.0.1 in a thread; yields (base URL, services)."""
    _need_chromium()
    import uvicorn

    from digest.web import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    services = build_services(with_web(settings, base_url=base))
    add_papers(services)
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield base, services
    server.should_exit = True
    thread.join(timeout=10)
    services.close()


@pytest.fixture
def browser():
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield playwright, chromium
        chromium.close()


def shoot(page, name: str) -> None:
    """Full-page screenshots at desktop and phone width."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def wait_for_mail(sink, address: str, count: int, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails = to(sink.messages, address)
        if len(mails) >= count:
            return mails
        time.sleep(0.05)
    raise AssertionError(f"no mail #{count} for {address} within {timeout}s")


def urls(message, base: str, kind: str) -> list[str]:
    from email import message_from_bytes, policy

    parsed = message_from_bytes(message.data, policy=policy.default)
    text = parsed.get_body(preferencelist=("plain",)).get_content()
    found = re.findall(rf"{re.escape(base)}/{kind}/[A-Za-z0-9._-]+(?:/\d+/(?:up|down))?", text)
    return list(dict.fromkeys(found))


def subscriber(services, email: str) -> Subscriber | None:
    with Session(services.engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == email)).first()


def test_visitor_from_landing_page_to_unsubscribe(live, browser, smtp_sink) -> None:
    base, services = live
    playwright, chromium = browser
    email = "browser@example.com"
    context = chromium.new_context(viewport=DESKTOP, timezone_id="Europe/Berlin")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(base + "/")
    assert page.locator("#timezone").input_value() == "Europe/Berlin"  # pre-filled by JS
    assert page.locator("ol.papers li").count() == 6
    shoot(page, "landing")
    page.fill("#email", email)
    page.fill("#interests", "efficient LLM inference, speculative decoding")
    page.click("button[type=submit].primary")
    assert page.locator("h1").inner_text() == "Check your inbox"

    [confirmation] = wait_for_mail(smtp_sink, email, 1)
    [confirm_url] = urls(confirmation, base, "confirm")
    page.goto(confirm_url)
    assert subscriber(services, email).status == "pending"  # the GET alone confirms nothing
    shoot(page, "confirm")
    page.click("text=Confirm my subscription")
    assert "subscribed" in page.locator("h1").inner_text()
    assert subscriber(services, email).status == "active"

    # Playwright's sync API owns this thread's event loop; the send runs on its own.
    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(lambda: asyncio.run(send_test_digest(services, to=email))).result()
    assert outcome.kind == "sent"
    digest = wait_for_mail(smtp_sink, email, 2)[-1]
    [manage_url] = urls(digest, base, "manage")
    rate_urls = urls(digest, base, "f")
    [unsubscribe_url] = urls(digest, base, "u")

    page.goto(manage_url)
    shoot(page, "manage")
    page.fill("#interests", "protein structure prediction, graph neural networks")
    page.click("text=Save preferences")
    assert "Saved" in page.locator(".notice").inner_text()
    assert subscriber(services, email).interests == (
        "protein structure prediction, graph neural networks"
    )

    page.goto(rate_urls[0])
    page.click("button.primary")
    assert "Thanks for rating" in page.locator("h1").inner_text()
    with Session(services.engine) as session:
        assert session.exec(select(Feedback.value)).all() == [1]

    # RFC 8058 one-click, as a mailbox provider sends it: no cookies, no CSRF token.
    provider = playwright.request.new_context()
    response = provider.post(
        unsubscribe_url, form={"List-Unsubscribe": "One-Click"}, max_redirects=0
    )
    assert response.status == 200
    assert subscriber(services, email).status == "unsubscribed"
    provider.dispose()

    with Session(services.engine) as session:  # back on the list, to press the page button
        row = session.exec(select(Subscriber).where(Subscriber.email == email)).one()
        row.status = "active"
        session.add(row)
        session.commit()
    page.goto(unsubscribe_url)
    assert subscriber(services, email).status == "active"
    shoot(page, "unsubscribe")
    page.click("button.danger")
    assert "unsubscribed" in page.locator("h1").inner_text()
    assert subscriber(services, email).status == "unsubscribed"
    assert errors == []
    context.close()


def test_w7_stored_xss_payloads_do_not_execute_in_chromium(browser, services) -> None:
    """Render the pages with 50 payloads, then load them with no CSP to help (set_content)."""
    _, chromium = browser
    pages = xss_pages(services)
    executed = {}
    dialogs: list[str] = []
    context = chromium.new_context(java_script_enabled=True)
    page = context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for name, html in pages.items():
        page.set_content(html, wait_until="load")
        page.wait_for_timeout(100)
        executed[name] = page.evaluate("() => window.__xss === undefined ? 0 : 1")
    context.close()
    record("W7-chromium", payloads=len(XSS), executed=executed, dialogs=len(dialogs))
    assert set(executed.values()) == {0} and dialogs == []


def test_pages_say_who_and_what_at_phone_and_desktop_width(live, browser) -> None:
    base, services = live
    _, chromium = browser
    from tests.web_support import active_subscriber

    SHOTS.mkdir(parents=True, exist_ok=True)
    email = "phone.reader@example.org"
    sid = active_subscriber(services, email)
    manage_url = f"{base}/manage/{services.tokens.dumps('manage', sid)}"
    unsubscribe_url = f"{base}/u/{services.tokens.dumps('unsubscribe', sid)}"
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        context = chromium.new_context(viewport=size, timezone_id="Europe/Berlin")
        page = context.new_page()
        failed: list[str] = []
        page.on("response", lambda r, f=failed: r.status >= 400 and f.append(f"{r.status} {r.url}"))
        fits = "() => document.documentElement.scrollWidth <= window.innerWidth"

        page.goto(base + "/")
        assert page.request.get(base + "/favicon.ico").status == 200
        assert not page.locator("#weekly_day").is_visible()  # "Every day" is chosen
        page.select_option("#frequency", "weekly")
        assert page.locator("#weekly_day").is_visible()  # by CSS alone
        assert page.evaluate(fits), f"landing overflows at {label} width"
        page.select_option("#frequency", "daily")
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"landing-{label}.png"), full_page=True)

        page.goto(manage_url)
        assert email in page.locator(".who").inner_text()
        state = page.locator("p.state").inner_text()
        assert "Every day at 07:00" in state and "Weekly on" not in state
        assert not page.locator("#weekly_day").is_visible()
        pause = page.locator(".actions button", has_text="Pause").bounding_box()
        leave = page.locator(".actions button", has_text="Unsubscribe").bounding_box()
        assert abs(pause["y"] - leave["y"]) < 1 and abs(pause["height"] - leave["height"]) < 1
        assert page.evaluate(fits), f"manage page overflows at {label} width"
        page.screenshot(path=str(SHOTS / f"manage-{label}.png"), full_page=True)
        assert failed == [], failed
        context.close()

    context = chromium.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(manage_url)
    page.locator(".actions button", has_text="Unsubscribe").click()
    assert "unsubscribed" in page.locator("h1").inner_text()
    assert subscriber(services, email).status == "unsubscribed"
    page.goto(manage_url)
    assert "/feed/" not in page.content()
    page.goto(unsubscribe_url)  # the link again, later
    assert page.locator("h1").inner_text() == "You're unsubscribed"
    page.screenshot(path=str(SHOTS / "unsubscribed-phone.png"), full_page=True)
    page.click("text=Subscribe again")
    assert "Welcome back" in page.locator("h1").inner_text()
    assert subscriber(services, email).status == "active"
    context.close()
