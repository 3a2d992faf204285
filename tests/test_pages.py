"""Pages that say who and what: the manage page's address, schedule and unsubscribe button;
the unsubscribe page after the fact; the feed after unsubscribing; the favicon; the landing
page rendered once per edition and fetch, each visitor still getting their own CSRF token."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from digest.models import FeedState, Paper, Subscriber, Suppression, utcnow
from digest.web import pages
from digest.web.links import feed_token
from tests.web_support import CSRF, Web, active_subscriber, add_papers

EMAIL = "reader@example.org"


@pytest.fixture
def web(services):
    add_papers(services)
    client = Web(services)
    yield client
    client.close()


def status_of(services, email: str = EMAIL) -> str:
    with Session(services.engine) as session:
        return session.exec(select(Subscriber.status).where(Subscriber.email == email)).one()


def set_schedule(services, sid: int, frequency: str, weekly_day: int = 0) -> None:
    with Session(services.engine) as session:
        subscriber = session.get(Subscriber, sid)
        subscriber.frequency, subscriber.weekly_day = frequency, weekly_day
        session.add(subscriber)
        session.commit()


def state_line(html: str) -> str:
    return re.search(r'<p class="state">(.*?)</p>', html, re.S).group(1)


# --- manage -----------------------------------------------------------------------------------


def test_manage_page_names_the_address_and_has_an_unsubscribe_button(web, services) -> None:
    sid = active_subscriber(services, EMAIL)
    path = f"/manage/{services.tokens.dumps('manage', sid)}"

    page = web.client.get(path)

    assert f'Preferences for <strong class="address">{EMAIL}</strong>' in page.text
    assert f'action="{path}/unsubscribe"' in page.text
    done = web.post_form(f"{path}/unsubscribe")
    assert done.status_code == 200 and "You're unsubscribed" in done.text
    assert status_of(services) == "unsubscribed"


def test_the_weekly_day_is_shown_only_for_weekly(web, services) -> None:
    sid = active_subscriber(services, EMAIL)
    path = f"/manage/{services.tokens.dumps('manage', sid)}"

    daily = state_line(web.client.get(path).text)
    set_schedule(services, sid, "weekly", 2)
    weekly = state_line(web.client.get(path).text)
    set_schedule(services, sid, "weekdays")
    weekdays = state_line(web.client.get(path).text)

    assert "Every day at 07:00 (UTC)" in daily and "Weekly on" not in daily
    assert "Weekly on: <strong>Wednesday</strong> at 07:00 (UTC)" in weekly
    assert "Weekdays at 07:00" in weekdays and "Weekly on" not in weekdays


# --- unsubscribe, resubscribe, the feed -------------------------------------------------------


def test_reopening_the_unsubscribe_link_says_so_and_offers_to_resubscribe(web, services) -> None:
    sid = active_subscriber(services, EMAIL)
    path = f"/u/{services.tokens.dumps('unsubscribe', sid)}"
    assert "Unsubscribe?" in web.client.get(path).text
    web.post_form(path)
    time.sleep(1.1)  # a token minted now would differ from the link's: the page keeps the link

    again = web.client.get(path)

    assert again.status_code == 200
    assert "You're unsubscribed" in again.text and "Unsubscribe?" not in again.text
    assert f'action="{path}/resubscribe"' in again.text
    back = web.post_form(f"{path}/resubscribe")
    assert back.status_code == 200 and "Welcome back" in back.text
    assert status_of(services) == "active"
    with Session(services.engine) as session:
        assert session.exec(select(Suppression)).all() == []
    assert "Unsubscribe?" in web.client.get(path).text  # subscribed again: the question again


def test_a_bounced_address_cannot_resubscribe_from_the_link(web, services) -> None:
    sid = active_subscriber(services, EMAIL)
    path = f"/u/{services.tokens.dumps('unsubscribe', sid)}"
    web.post_form(path)
    with Session(services.engine) as session:  # a hard bounce arrived later
        row = session.exec(select(Suppression)).one()
        row.reason = "hard_bounce"
        session.add(row)
        session.commit()

    page = web.client.get(path)
    refused = web.post_form(f"{path}/resubscribe")

    assert status_of(services) == "unsubscribed"
    assert "You're unsubscribed" in refused.text and "Welcome back" not in refused.text
    assert "Subscribe again" in page.text  # the button shows; the use case decides


def test_after_unsubscribing_the_feed_is_gone_and_its_address_hidden(web, services) -> None:
    sid = active_subscriber(services, EMAIL)
    manage = f"/manage/{services.tokens.dumps('manage', sid)}"
    feed = f"/feed/{feed_token(services, sid)}.xml"
    assert web.client.get(feed).status_code == 200
    assert feed in web.client.get(manage).text

    web.post_form(f"/u/{services.tokens.dumps('unsubscribe', sid)}")

    assert web.client.get(feed).status_code == 410
    page = web.client.get(manage).text
    assert "/feed/" not in page and "RSS" not in page


# --- favicon ----------------------------------------------------------------------------------


def test_favicon_is_served(web) -> None:
    icon = web.client.get("/favicon.ico")

    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/vnd.microsoft.icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO directory
    assert "public" in icon.headers["cache-control"]
    assert '<link rel="icon" href="/favicon.ico"' in web.client.get("/").text


# --- the landing page, once per edition ---------------------------------------------------------


def test_landing_is_rendered_once_until_an_edition_or_a_fetch(
    services, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_papers(services)
    calls = []
    real = pages.trending_papers
    monkeypatch.setattr(pages, "trending_papers", lambda s: calls.append(1) or real(s))
    services.settings = services.settings.model_copy(
        update={"web": services.settings.web.model_copy(update={"page_cache_s": 0.0})}
    )
    web = Web(services)
    try:
        first = [web.client.get("/").text for _ in range(5)]
        with Session(services.engine) as session:
            session.add(
                Paper(key="2612.00001", title="A paper fetched later", upvotes=999,
                      url="https://arxiv.org/abs/2612.00001", first_seen=utcnow())
            )  # fmt: skip
            session.commit()
        still = web.client.get("/").text
        with Session(services.engine) as session:
            now = utcnow()
            session.add(FeedState(source="hf-daily", last_status="ok", last_fetch_at=now,
                                  last_success_at=now - timedelta(seconds=1)))  # fmt: skip
            session.commit()
        after = web.client.get("/").text
    finally:
        web.close()

    assert len(calls) == 2  # the first request, then the fetch; not once per request
    assert "A paper fetched later" not in still
    assert "A paper fetched later" in after
    assert len({CSRF.search(page).group(1) for page in first}) == 1  # same browser, same token


def test_each_visitor_gets_a_token_bound_to_their_cookie(services) -> None:
    add_papers(services)
    alice, bob = Web(services), Web(services, client_addr=("203.0.113.8", 40000))
    try:
        tokens = [alice.csrf(), bob.csrf()]
        subscribed = alice.subscribe("alice@example.org")
        forged = bob.client.post("/subscribe", data={"csrf_token": tokens[0], "email": "x@y.org"})
    finally:
        alice.close()
        bob.close()

    assert tokens[0] != tokens[1]
    assert subscribed.status_code == 200
    assert forged.status_code == 403


def test_the_web_offers_and_accepts_only_real_time_zones(web) -> None:
    page = web.client.get("/").text
    offered = re.findall(r'<option value="([A-Za-z_/+-]+)">', page.split('id="timezones"')[1])

    assert "Europe/Paris" in offered and "UTC" in offered
    assert "Factory" not in offered and "localtime" not in offered and "posixrules" not in offered
    for zone in ("Factory", "localtime", "Mars/Olympus"):
        refused = web.subscribe("tz@example.org", timezone=zone)
        assert refused.status_code == 400, zone
    assert web.subscribe("tz@example.org", timezone="Europe/Paris").status_code == 200


def test_the_stored_landing_page_keeps_every_security_header(web) -> None:
    first = web.client.get("/")  # mints the cookie, takes the ordinary path
    again = web.client.get("/")  # a returning browser: answered from the stored bytes
    head = web.client.head("/")

    assert again.text == first.text
    for name in ("content-security-policy", "x-frame-options", "x-content-type-options",
                 "referrer-policy", "cache-control", "permissions-policy"):  # fmt: skip
        assert again.headers[name] == first.headers[name], name
    assert again.headers["cache-control"] == "no-store"
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(first.content)
