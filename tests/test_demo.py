"""The demo path end to end: recorded feeds -> SQLite -> ranking -> real SMTP -> .eml files."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlmodel import Session, select

from digest.db import make_engine
from digest.demo import run_demo
from digest.models import Delivery, Paper, Subscriber


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out)


def _sent_papers(out: Path) -> dict[str, list[Paper]]:
    engine = make_engine(f"sqlite:///{out / 'demo.db'}")
    with Session(engine) as session:
        papers = {p.key: p for p in session.exec(select(Paper))}
        result = {}
        for delivery in session.exec(select(Delivery)):
            subscriber = session.get(Subscriber, delivery.subscriber_id)
            result[subscriber.email] = [papers[k] for k in delivery.paper_keys]
    engine.dispose()
    return result


def test_each_demo_subscriber_receives_exactly_one_message(demo_run) -> None:
    out, report = demo_run

    recipients = sorted(message_from_bytes(p.read_bytes())["To"] for p in report.messages)

    assert report.sent == 3
    assert recipients == ["ada@demo.example", "alan@demo.example", "grace@demo.example"]


def test_each_message_is_multipart_alternative_with_text_and_html(demo_run) -> None:
    _, report = demo_run

    for path in report.messages:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert message.get_content_type() == "multipart/alternative"
        parts = [part.get_content_type() for part in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "Unsubscribe" in message.get_body(("plain",)).get_content()


@pytest.mark.parametrize(
    ("email", "words"),
    [
        ("ada@demo.example", ("agent",)),
        ("grace@demo.example", ("quantum", "qubit")),
        ("alan@demo.example", ("test",)),
    ],
)
def test_top_papers_follow_each_subscribers_interests(demo_run, email, words) -> None:
    out, _ = demo_run

    top3 = _sent_papers(out)[email][:3]

    assert len(top3) == 3
    for paper in top3:
        text = (paper.title + " " + paper.abstract).lower()
        assert any(word in text for word in words), paper.title


def test_the_demo_shows_real_papers_with_authors_ids_and_links(demo_run) -> None:
    out, report = demo_run

    for papers in _sent_papers(out).values():
        for paper in papers:
            assert paper.arxiv_id and paper.authors, paper.key
            assert not any(a.lower().startswith("listing") for a in paper.authors)
    for path in report.messages:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        html = message.get_body(("html",)).get_content()
        assert "example.org" not in html.replace("demo.example", "")
        assert "https://arxiv.org/abs/" in html and "https://arxiv.org/pdf/" in html
        assert "arXiv:" in html


def test_a_second_run_on_the_same_day_sends_nothing_new(demo_run) -> None:
    out, first = demo_run

    again = run_demo(out)

    assert again.sent == 0
    assert again.papers_new == 0
    assert again.already_sent == 3
    assert len(again.messages) == 3
    assert (out / "index.html").read_text(encoding="utf-8").count("<tr><td>") == 3
