"""The profile fields of the subscribe form and the manage page: followed authors, muted words
and categories, papers per digest; stored as typed, shown back, errors in one line."""

from __future__ import annotations

from sqlmodel import Session, select

from digest.models import Subscriber
from tests.web_support import Web, active_subscriber, add_papers


def _stored(services, address="reader@example.com") -> Subscriber:
    with Session(services.engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == address)).one()


def test_the_manage_page_saves_authors_muted_and_papers_per_digest(services):
    add_papers(services)
    web = Web(services)
    try:
        sid = active_subscriber(services, "reader@example.com")
        path = f"/manage/{services.tokens.dumps('manage', sid)}"
        page = web.client.get(path)
        for name in ("authors", "muted", "papers_per_digest"):
            assert f'name="{name}"' in page.text
        fields = dict(interests="graph networks", timezone="UTC", delivery_hour="7")
        saved = web.post_form(
            path,
            authors="Anna V. Baeva\nHajdu\\v{s}ek, Michal; Anna V. Baeva",
            muted="blockchain, cs.CR",
            papers_per_digest="12",
            **fields,
        )
        assert saved.status_code == 200 and "Saved" in saved.text
        stored = _stored(services)
        assert stored.authors == ["Anna V. Baeva", "Hajdu\\v{s}ek, Michal"]
        assert stored.muted == ["blockchain", "cs.CR"]
        assert stored.papers_per_digest == 12
        shown = web.client.get(path).text
        assert "Anna V. Baeva\nHajdu\\v{s}ek, Michal</textarea>" in shown
        assert 'value="blockchain, cs.CR"' in shown and 'value="12"' in shown

        refused = web.post_form(path, papers_per_digest="31", **fields)
        assert refused.status_code == 400
        assert "Please choose a number from 5 to 30" in refused.text
        assert _stored(services).papers_per_digest == 12  # nothing lost

        web.post_form(path, papers_per_digest="", **fields)
        assert _stored(services).papers_per_digest is None  # back to the default
    finally:
        web.close()


def test_the_subscribe_form_takes_followed_authors(services):
    add_papers(services)
    web = Web(services)
    try:
        assert 'name="authors"' in web.client.get("/").text
        answer = web.subscribe("new@example.com", interests="optics", authors="A. V. Baeva")
        web.drain()
        assert answer.status_code == 200
        assert _stored(services, "new@example.com").authors == ["A. V. Baeva"]
    finally:
        web.close()
