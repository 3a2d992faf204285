"""The website's happy paths: landing, subscribe → confirm, manage, rate, view, feed, leave."""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import UTC, date, datetime
from xml.etree import ElementTree

import pytest
from sqlmodel import Session, select

from digest.models import Consent, Feedback, Subscriber, Suppression
from digest.store.subscribers import add_subscriber
from digest.store.suppressions import email_hash
from tests.web_support import Web, add_papers, links_in, to


@pytest.fixture
def web(services):
    add_papers(services)
    client = Web(services)
    yield client
    client.close()


def _subscriber(services, email):
    with Session(services.engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == email)).first()


def _active(services, email="reader@example.com", interests="llm inference") -> int:
    with Session(services.engine) as session:
        sid = add_subscriber(session, email=email, interests=interests, confirmed=True).id
        session.commit()
        return sid


def test_landing_lists_trending_papers_by_upvotes_and_the_form(web) -> None:
    page = web.client.get("/")

    assert page.status_code == 200
    titles = re.findall(r'<li>\s*<a href="[^"]+"[^>]*>([^<]+)</a>', page.text)
    assert titles[:3] == [
        "Diffusion transformers for video generation",
        "Efficient LLM inference with speculative decoding",
        "Protein structure prediction at scale",
    ]
    for name in (
        "email",
        "interests",
        "categories",
        "seed_papers",
        "delivery_hour",
        "timezone",
        "frequency",
        "trending",
        "csrf_token",
    ):
        assert f'name="{name}"' in page.text
    assert '<meta name="viewport"' in page.text


def test_subscribe_confirm_flow_activates_only_after_the_button(web, services, smtp_sink) -> None:
    response = web.subscribe(
        "New@Example.com",
        interests="video diffusion, protein folding",
        timezone="Europe/Berlin",
        delivery_hour="6",
        trending="60",
    )
    web.drain()

    assert response.status_code == 200 and "Check your inbox" in response.text
    pending = _subscriber(services, "new@example.com")
    assert pending.status == "pending"
    assert pending.interests == "video diffusion, protein folding"
    assert (pending.timezone, pending.delivery_hour, pending.trending_weight) == (
        "Europe/Berlin",
        6,
        0.6,
    )
    [mail] = to(smtp_sink.messages, "new@example.com")
    [link] = links_in(mail, "confirm")

    shown = web.client.get(link)  # what a mail scanner's prefetch does
    assert shown.status_code == 200 and "Confirm my subscription" in shown.text
    assert _subscriber(services, "new@example.com").status == "pending"

    done = web.post_form(link)
    assert done.status_code == 200 and "subscribed" in done.text
    active = _subscriber(services, "new@example.com")
    assert active.status == "active" and active.confirmed_at is not None
    with Session(services.engine) as session:
        consent = session.exec(select(Consent)).one()
    assert consent.confirmed_at is not None and consent.form_version


def test_subscribing_again_mails_the_preferences_link_and_changes_nothing(
    web, services, smtp_sink
) -> None:
    _active(services, interests="llm inference")
    fresh = web.subscribe("new@example.com", interests="something")
    again = web.subscribe("Reader@Example.com", interests="overwritten by a stranger")
    web.drain()

    # The page gives away nothing: the same answer as for a new address.
    assert again.status_code == 200
    assert again.text.replace("reader@example.com", "X") == fresh.text.replace(
        "new@example.com", "X"
    )
    reader = _subscriber(services, "reader@example.com")
    assert (reader.status, reader.interests) == ("active", "llm inference")
    [mail] = to(smtp_sink.messages, "reader@example.com")
    subject = email.message_from_bytes(mail.data, policy=email.policy.default)["Subject"]
    assert subject == "You are already subscribed"
    assert not links_in(mail, "confirm")
    [link] = links_in(mail, "manage")
    page = web.client.get(link)
    assert page.status_code == 200 and "llm inference" in page.text


def test_manage_page_edits_preferences_pause_resume_and_undo_rating(web, services) -> None:
    sid = _active(services)
    token = services.tokens.dumps("manage", sid)
    path = f"/manage/{token}"

    saved = web.post_form(
        path,
        interests="graph neural networks, weather",
        categories="cs.LG",
        seed_papers="https://arxiv.org/abs/2611.00004v2",
        timezone="UTC",
        delivery_hour="9",
        frequency="weekly",
        weekly_day="2",
        trending="10",
    )
    assert saved.status_code == 200 and "Saved" in saved.text
    stored = _subscriber(services, "reader@example.com")
    assert stored.interests == "graph neural networks, weather"
    assert stored.seed_papers == ["2611.00004"] and stored.frequency == "weekly"

    assert "paused" in web.post_form(f"{path}/pause").text
    assert _subscriber(services, "reader@example.com").status == "paused"
    web.post_form(f"{path}/resume")
    assert _subscriber(services, "reader@example.com").status == "active"

    from digest.usecases import ratings

    ratings.rate(services, sid, "2611.00001", 1)
    page = web.client.get(path)
    assert "Diffusion transformers for video generation" in page.text
    web.post_form(f"{path}/ratings", paper="2611.00001")
    with Session(services.engine) as session:
        assert session.exec(select(Feedback.value)).one() == 0


def test_feedback_link_shows_a_button_then_records_undo_and_more_like_this(web, services) -> None:
    sid = _active(services)
    token = services.tokens.dumps("feedback", [sid, "2611.00002", 1, 0])
    path = f"/f/{token}"

    assert web.client.get(path).status_code == 200
    with Session(services.engine) as session:
        assert session.exec(select(Feedback)).first() is None  # GET records nothing

    for _ in range(2):  # idempotent
        thanks = web.post_form(path)
        assert thanks.status_code == 200 and "Thanks for rating" in thanks.text
    with Session(services.engine) as session:
        assert session.exec(select(Feedback.value)).all() == [1]

    web.post_form(f"{path}/undo")
    with Session(services.engine) as session:
        assert session.exec(select(Feedback.value)).all() == [0]
    web.post_form(f"{path}/more")
    assert "2611.00002" in _subscriber(services, "reader@example.com").seed_papers


def test_digest_shaped_rating_links_name_the_paper_by_position(web, services) -> None:
    sid = _active(services)
    token = services.tokens.dumps("feedback", [sid, 0, ["2611.00001", "2611.00003"]])

    assert web.client.get(f"/f/{token}/1/down").status_code == 200
    assert web.post_form(f"/f/{token}/1/down").status_code == 200
    with Session(services.engine) as session:
        assert session.exec(select(Feedback.paper_key, Feedback.value)).all() == [
            ("2611.00003", -1)
        ]
    assert web.client.get(f"/f/{token}/2/up").status_code == 400  # no third paper
    assert web.client.get(f"/f/{token}/0/sideways").status_code == 400
    assert web.post_form(f"/f/{token}/1/down/undo").status_code == 200


def test_view_in_browser_and_rss_feed(web, services) -> None:
    sid = _active(services)
    view = web.client.get(f"/view/{services.tokens.dumps('view', [sid, 0])}")
    assert view.status_code == 200
    assert "Efficient LLM inference with speculative decoding" in view.text
    assert "script-src" not in view.headers["content-security-policy"]

    from digest.models import Delivery, Edition
    from digest.web.links import feed_token

    # The feed lists what the emails showed (issue 15): nothing before a digest was sent.
    path = f"/feed/{feed_token(services, sid)}.xml"
    titles = [t.text for t in ElementTree.fromstring(web.client.get(path).content).iter("title")]
    assert "Efficient LLM inference with speculative decoding" not in titles
    with Session(services.engine) as session:
        edition = Edition(edition_date=date(2026, 11, 24), status="done")
        session.add(edition)
        session.flush()
        picks = [{"id": "2611.00002", "why": "matches llm inference", "kind": "match"}]
        session.add(
            Delivery(
                edition_id=edition.id,
                subscriber_id=sid,
                state="sent",
                sent_at=datetime(2026, 11, 24, 7, tzinfo=UTC),
                paper_keys=["2611.00002"],
                picks=picks,
            )
        )
        session.commit()
    feed = web.client.get(path)
    assert feed.status_code == 200 and feed.headers["content-type"].startswith(
        "application/rss+xml"
    )
    titles = [t.text for t in ElementTree.fromstring(feed.content).iter("title")]
    assert "Efficient LLM inference with speculative decoding" in titles


def test_unsubscribe_page_button_and_one_click(web, services) -> None:
    sid = _active(services)
    path = f"/u/{services.tokens.dumps('unsubscribe', sid)}"

    page = web.client.get(path)
    assert page.status_code == 200 and "Unsubscribe" in page.text
    assert _subscriber(services, "reader@example.com").status == "active"
    done = web.post_form(path)
    assert done.status_code == 200 and "unsubscribed" in done.text
    assert _subscriber(services, "reader@example.com").status == "unsubscribed"
    with Session(services.engine) as session:
        assert session.exec(select(Suppression.reason)).one() == "unsubscribed"


def test_export_and_erase_from_the_manage_page(web, services) -> None:
    sid = _active(services)
    path = f"/manage/{services.tokens.dumps('manage', sid)}"

    export = web.post_form(f"{path}/export")
    assert export.status_code == 200
    assert "attachment" in export.headers["content-disposition"]
    assert json.loads(export.text)["subscriber"]["email"] == "reader@example.com"

    refused = web.post_form(f"{path}/delete")
    assert refused.status_code == 400
    erased = web.post_form(f"{path}/delete", confirm="yes")
    assert erased.status_code == 200 and "deleted" in erased.text
    assert _subscriber(services, "reader@example.com") is None
    assert web.client.get(path).status_code == 404


def test_healthz_reports_database_and_ages(web) -> None:
    health = web.client.get("/healthz")

    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert set(body) >= {"last_fetch_age_s", "last_edition_age_s"}


def test_form_errors_rerender_the_form_with_values_escaped(web) -> None:
    response = web.subscribe("not-an-address", interests="<b>x</b>")

    assert response.status_code == 400
    assert "That does not look like a valid email address." in response.text
    assert "&lt;b&gt;x&lt;/b&gt;" in response.text


def test_unknown_paths_get_the_html_404(web) -> None:
    response = web.client.get("/nope")
    assert response.status_code == 404 and "Page not found" in response.text


def test_suppression_hash_matches_store(services) -> None:
    assert len(email_hash("a@example.com")) == 64


def test_the_nothing_new_note_is_a_choice_on_the_manage_page_off_by_default(web, services):
    sid = _active(services)
    path = f"/manage/{services.tokens.dumps('manage', sid)}"
    page = web.client.get(path)
    assert 'name="nothing_new_note"' in page.text
    assert not _subscriber(services, "reader@example.com").nothing_new_note

    fields = dict(interests="graph networks", timezone="UTC", delivery_hour="7", frequency="daily")
    web.post_form(path, nothing_new_note="on", **fields)
    assert _subscriber(services, "reader@example.com").nothing_new_note
    assert re.search(r'name="nothing_new_note" value="on" checked', web.client.get(path).text)
    web.post_form(path, **fields)  # an unticked box is not sent
    assert not _subscriber(services, "reader@example.com").nothing_new_note
