"""Commands by email, end to end over real SMTP into `digest inbound` (and once through --stdin)."""

from __future__ import annotations

import re
import smtplib
import time
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from digest.bootstrap import Services
from digest.mail_commands import parse_commands
from digest.models import Delivery, Edition, Feedback, Subscriber, utcnow
from digest.smtpd.server import InboundServer
from digest.smtpd.sink import SmtpSink, free_port
from digest.store import subscribers as subscriber_store
from digest.store import suppressions
from digest.usecases.subscriptions import ConfirmResult, confirm

FIXTURES = Path(__file__).parent / "fixtures"
KEYS = ["2611.00001", "2611.00002", "2611.00003"]


@pytest.fixture
def inbound(services: Services) -> Iterator[InboundServer]:
    with InboundServer(services, port=free_port()) as server:
        yield server


def send(server: InboundServer, to: str, body: str, *, sender="ada@example.org", subject=""):
    message = (
        f"From: Ada <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{time.time_ns()}@example.org>\r\n\r\n{body}\r\n"
    )
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.sendmail(sender, [to], message.encode())


def digest_reader(services: Services, email: str = "ada@example.org") -> int:
    """An active subscriber who was sent a digest of KEYS (in that order)."""
    now = utcnow()
    with Session(services.engine) as session:
        subscriber = subscriber_store.add_subscriber(session, email=email, confirmed=True)
        edition = Edition(edition_date=now.date(), status="sent")
        session.add(edition)
        session.flush()
        session.add(
            Delivery(
                edition_id=edition.id,
                subscriber_id=subscriber.id,
                state="sent",
                sent_at=now - timedelta(hours=1),
                paper_keys=KEYS,
            )
        )
        session.commit()
        return subscriber.id


def reply_address(services: Services, subscriber_id: int) -> str:
    token = services.tokens.dumps("reply", subscriber_id)
    return f"reply+{token}@{services.settings.email.reply_to_domain}"


def status_of(services: Services, subscriber_id: int) -> str:
    with Session(services.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber is not None
        return subscriber.status


def test_parse_commands_reads_subject_and_first_lines_only() -> None:
    found = parse_commands(
        "Re: Your papers",
        "+1 -2, like 3\nmore like 2\ninterests: Sparse  attention\n\nOn Tue, Ada wrote:\n> +3 -1",
    )
    assert found.ratings == [("up", 3), ("up", 1), ("down", 2), ("more", 2)]
    assert found.interests == "Sparse attention"
    assert parse_commands("unsubscribe", "").words == ["unsubscribe"]
    assert parse_commands("Re: 2026-11-24 digest", "Thanks!\n-- \nAda +44 20").empty


def test_subscribe_by_email_sends_the_confirmation_to_the_sender(
    services, inbound, smtp_sink: SmtpSink
) -> None:
    send(inbound, "digest@example.com", "subscribe\ninterests: quantum error correction")

    assert [m.recipients for m in smtp_sink.messages] == [["ada@example.org"]]
    body = message_from_bytes(smtp_sink.messages[0].data, policy=default_policy)
    text = body.get_body(preferencelist=("plain",)).get_content()
    token = re.search(r"/confirm/([A-Za-z0-9_.-]+)", text).group(1)
    subscriber_id, nonce = services.tokens.loads("confirm", token)
    assert confirm(services, subscriber_id, nonce) is ConfirmResult.CONFIRMED
    with Session(services.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert (subscriber.email, subscriber.status) == ("ada@example.org", "active")
        assert subscriber.interests == "quantum error correction"


def test_reply_ratings_record_feedback_for_the_right_papers(services, inbound) -> None:
    sid = digest_reader(services)
    send(inbound, reply_address(services, sid), "+1 -2\nmore like 3\n\nOn Tue wrote:\n> +2")

    with Session(services.engine) as session:
        rows = {f.paper_key: f.value for f in session.exec(select(Feedback))}
        seeds = session.get(Subscriber, sid).seed_papers
    assert rows == {KEYS[0]: 1, KEYS[1]: -1, KEYS[2]: 1}
    assert seeds == [KEYS[2]]


def test_forged_from_without_a_token_changes_nothing(
    services, inbound, smtp_sink: SmtpSink
) -> None:
    sid = digest_reader(services)
    send(inbound, "digest@example.com", "unsubscribe\n-1 -2", subject="unsubscribe")
    send(inbound, "digest@example.com", "pause")
    bad = reply_address(services, sid).replace("reply+", "reply+x")
    send(inbound, bad, "unsubscribe\n-1")

    assert status_of(services, sid) == "active"
    with Session(services.engine) as session:
        assert session.exec(select(Feedback)).all() == []
    # The real owner of the address gets one help text (rate-limited), nobody else anything.
    assert [m.recipients for m in smtp_sink.messages] == [["ada@example.org"]]


def test_mailto_unsubscribe_takes_effect_within_a_second(services, inbound) -> None:
    """C2: the List-Unsubscribe mailto (subject `unsubscribe`) acts before the 250."""
    sid = digest_reader(services)
    started = time.monotonic()
    send(inbound, reply_address(services, sid), "", subject="unsubscribe")
    elapsed = time.monotonic() - started

    assert status_of(services, sid) == "unsubscribed"
    assert elapsed < 1.0
    with Session(services.engine) as session:
        assert suppressions.is_suppressed(session, "ada@example.org")


def test_unknown_recipients_are_refused_at_rcpt(inbound) -> None:
    with (
        smtplib.SMTP(inbound.host, inbound.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused),
    ):
        client.sendmail("x@example.org", ["someone@elsewhere.example"], b"Subject: hi\r\n\r\nhi")


def test_bounce_reports_at_the_bounce_address_suppress(services, inbound) -> None:
    sid = digest_reader(services, "gm-no-account@example.org")
    raw = (FIXTURES / "dsn" / "gmail-gm-no-account.eml").read_bytes()
    with smtplib.SMTP(inbound.host, inbound.port, timeout=10) as client:
        client.sendmail("", ["bounces@example.com"], raw)
    assert status_of(services, sid) == "suppressed"


def test_stdin_mode_reads_one_message(services, tmp_path, smtp_sink) -> None:
    from digest.cli import app

    sid = digest_reader(services)
    message = (
        f"From: ada@example.org\r\nTo: {reply_address(services, sid)}\r\nSubject: pause\r\n\r\n"
    )
    env = {
        "DIGEST_MODE": "dev",
        "DIGEST_DATABASE_URL": services.settings.database_url,
        "DIGEST_SMTP_HOST": smtp_sink.host,
        "DIGEST_SMTP_PORT": str(smtp_sink.port),
    }
    result = CliRunner().invoke(app, ["inbound", "--stdin"], input=message.encode(), env=env)
    assert result.exit_code == 0, result.output
    assert "pause" in result.output
    assert status_of(services, sid) == "paused"
    empty = CliRunner().invoke(app, ["inbound", "--stdin"], input=b"", env=env)
    assert empty.exit_code == 1


def test_commands_by_reply_are_acknowledged_to_the_subscriber(
    services, inbound, smtp_sink: SmtpSink
) -> None:
    sid = digest_reader(services)

    send(inbound, reply_address(services, sid), "pause\n+1 -2")
    send(inbound, reply_address(services, sid), "", subject="unsubscribe")

    replies = [message_from_bytes(m.data, policy=default_policy) for m in smtp_sink.messages]
    assert [m["To"] for m in replies] == ["ada@example.org", "ada@example.org"]
    assert all(m["Auto-Submitted"] == "auto-replied" for m in replies)
    first, second = (m.get_content() for m in replies)
    assert "your digest is paused" in first and "ratings recorded: 2" in first
    assert "you are unsubscribed" in second
    assert status_of(services, sid) == "unsubscribed"


def test_the_rating_acknowledgement_names_the_rated_papers(
    services, inbound, smtp_sink: SmtpSink
) -> None:
    from digest.models import Paper

    sid = digest_reader(services)
    with Session(services.engine) as session:
        for n, key in enumerate(KEYS, start=1):
            title = r"Schr\"odinger bridges, part " + str(n)
            session.add(Paper(key=key, arxiv_id=key, title=title))
        session.commit()

    send(inbound, reply_address(services, sid), "+1 -3")

    [reply] = [message_from_bytes(m.data, policy=default_policy) for m in smtp_sink.messages]
    text = reply.get_content()
    assert "👍 1. Schrödinger bridges, part 1" in text
    assert "👎 3. Schrödinger bridges, part 3" in text
    assert "part 2" not in text
