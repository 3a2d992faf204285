"""Every way to follow an author: `digest subscribers add --author`, the CSV import's
`authors` column, and the email command `follow: NAME` (through the real inbound SMTP server
and the SMTP sink)."""

from __future__ import annotations

import smtplib
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlmodel import Session, select

from digest.models import Subscriber
from digest.smtpd.server import InboundServer
from digest.smtpd.sink import SmtpSink, free_port
from tests.test_admin_cli import run
from tests.test_inbound import digest_reader, reply_address


@pytest.fixture
def env(tmp_path: Path, smtp_sink: SmtpSink) -> dict[str, str]:
    environ = {
        "DIGEST_MODE": "dev",
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'follow.db'}",
        "DIGEST_SMTP_HOST": smtp_sink.host,
        "DIGEST_SMTP_PORT": str(smtp_sink.port),
    }
    assert run(environ, "init").exit_code == 0
    return environ


@pytest.fixture
def inbound(services):
    with InboundServer(services, port=free_port()) as server:
        yield server


def send(server, to: str, body: str) -> None:
    """A reply as a mail program writes it: UTF-8 text, declared."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "ada@example.org", to, "Re: digest"
    message.set_content(body)
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.send_message(message)


def _authors(url: str, address: str) -> list[str]:
    from digest.db import make_engine

    with Session(make_engine(url)) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == address)).one().authors


def test_subscribers_add_takes_repeated_author_options(env) -> None:
    added = run(
        env,
        *("subscribers", "add", "ada@example.org", "--confirmed"),
        *("--author", "Anna V. Baeva", "--author", "Hajdu\\v{s}ek, Michal"),
    )
    assert added.exit_code == 0, added.output
    assert _authors(env["DIGEST_DATABASE_URL"], "ada@example.org") == [
        "Anna V. Baeva",
        "Hajdu\\v{s}ek, Michal",
    ]
    pending = run(env, "subscribers", "add", "bob@example.org", "--author", "A. Turing")
    assert pending.exit_code == 0, pending.output
    assert _authors(env["DIGEST_DATABASE_URL"], "bob@example.org") == ["A. Turing"]
    long_name = run(env, "subscribers", "add", "eve@example.org", "--author", "x" * 101)
    assert long_name.exit_code != 0 and "--author" in long_name.output


def test_the_csv_import_reads_and_export_writes_an_authors_column(env, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "email,interests,authors\n"
        'ada@example.org,optics,"Baeva, Anna V.; Michal Hajdušek ;"\n'
        "grace@example.org,compilers,\n",
        encoding="utf-8",
    )
    imported = run(env, "subscribers", "import", str(source), "--confirmed")
    assert imported.exit_code == 0, imported.output
    url = env["DIGEST_DATABASE_URL"]
    assert _authors(url, "ada@example.org") == ["Baeva, Anna V.", "Michal Hajdušek"]
    assert _authors(url, "grace@example.org") == []
    out = tmp_path / "out.csv"
    assert run(env, "subscribers", "export", str(out)).exit_code == 0
    assert '"Baeva, Anna V.; Michal Hajdušek"' in out.read_text(encoding="utf-8")


def test_follow_by_email_adds_authors_once_and_says_so(services, inbound, smtp_sink: SmtpSink):
    sid = digest_reader(services)
    send(inbound, reply_address(services, sid), "follow: Anna V. Baeva; Hajdu\\v{s}ek, Michal")
    send(inbound, reply_address(services, sid), "Follow: Michal Hajdušek")  # the same person

    with Session(services.engine) as session:
        assert session.get(Subscriber, sid).authors == ["Anna V. Baeva", "Hajdu\\v{s}ek, Michal"]
    first, second = (
        message_from_bytes(m.data, policy=default_policy).get_content() for m in smtp_sink.messages
    )
    assert "you now follow Anna V. Baeva; Hajdu\\v{s}ek, Michal:" in first
    assert "you follow these authors already" in second

    # Replacing the interests by email keeps the rest of the profile (it used to reset it).
    send(inbound, reply_address(services, sid), "interests: optics")
    with Session(services.engine) as session:
        reader = session.get(Subscriber, sid)
        assert reader.interests == "optics" and len(reader.authors) == 2
