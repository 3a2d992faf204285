"""Followed authors, muted words and categories, and papers per digest, end to end: stored on
the subscriber, ranked by the edition, mailed through the SMTP sink (SQLite and PostgreSQL)."""

from __future__ import annotations

import email
import email.policy
import re

import pytest
from sqlmodel import Session, select

from digest.models import Paper
from digest.texts import unicode_text
from digest.usecases.ingest import ingest_file
from tests.test_calendar import DAY, FRIDAY, QUANT_PH, _keys_sent, _send, _services, _subscribe

BAEVA = "2504.18372"  # by "A. V. Baeva" in the feed
HAJDUSEK = "Michal Hajdušek"  # written "Michal Hajdu\v{s}ek" in the feed


@pytest.fixture
def services(database_url, smtp_sink):
    built = _services(database_url, smtp_sink)
    yield built
    built.close()


def _papers(services) -> dict[str, Paper]:
    with Session(services.engine) as session:
        return {p.key: p for p in session.exec(select(Paper))}


def test_followed_first_muted_never_and_the_chosen_number_of_papers(services, smtp_sink):
    ingest_file(services, QUANT_PH, kind="arxiv-rss", source="arxiv", now=FRIDAY - DAY / 4)
    papers = _papers(services)
    by_hajdusek = {k for k, p in papers.items() if any("Hajdu" in a for a in p.authors)}
    assert len(by_hajdusek) >= 2
    ada = _subscribe(
        services,
        "ada@example.com",
        "quantum error correction codes, entanglement",
        authors=["Anna V. Baeva", HAJDUSEK],
        muted=["hep-th", "qubit"],
        papers_per_digest=6,
    )

    report = _send(services, FRIDAY)

    assert report.sent == 1
    [keys] = _keys_sent(services, ada)
    assert len(keys) == 6
    followed = by_hajdusek | {BAEVA}
    assert set(keys[: len(followed)]) == followed  # followed authors' papers come first
    for key in keys:
        paper = papers[key]
        assert "hep-th" not in paper.categories
        assert not re.search(r"\bqubit\b", f"{paper.title} {paper.abstract}".lower())
    [mail] = smtp_sink.messages
    message = email.message_from_bytes(mail.data, policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    assert f"by {HAJDUSEK}, whom you follow" in text
    assert "by A. V. Baeva, whom you follow" in text
    assert message["Subject"].startswith("6 new for you: ")
    first_title = unicode_text(papers[keys[0]].title)
    assert first_title[:30] in message["Subject"]
