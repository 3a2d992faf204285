"""The SMTP transport against a real aiosmtpd server: bytes arrive exactly as built."""

from __future__ import annotations

import pytest

from digest.mailer import SmtpConnection, client_context
from digest.settings import SettingsError, SmtpSettings, load_settings
from digest.smtpd.sink import SmtpSink

HEADERS = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: dots\r\n\r\n"


async def _send(sink: SmtpSink, message: bytes):
    connection = SmtpConnection(SmtpSettings(host=sink.host, port=sink.port))
    try:
        return await connection.send(
            sender="a@example.com", recipient="b@example.com", message=message
        )
    finally:
        await connection.close()


async def test_lines_starting_with_a_dot_survive_the_fast_data_path(smtp_sink: SmtpSink) -> None:
    body = b".leading dot\r\n..two dots\r\nmiddle . dot\r\n.\r\nlast line"
    message = HEADERS + body

    outcome = await _send(smtp_sink, message)

    assert outcome.kind == "sent" and outcome.code == 250
    [received] = smtp_sink.messages
    assert received.data == message + b"\r\n"


async def test_bare_line_feeds_fall_back_to_the_library_path(smtp_sink: SmtpSink) -> None:
    message = HEADERS.replace(b"\r\n", b"\n") + b".dot\nplain\n"

    outcome = await _send(smtp_sink, message)

    assert outcome.kind == "sent"
    [received] = smtp_sink.messages
    assert received.data == message.replace(b"\n", b"\r\n")


def test_a_private_ca_that_is_not_there_fails_at_load_naming_the_key() -> None:
    env = {"DIGEST_MODE": "dev", "DIGEST_SMTP_TLS": "tls", "DIGEST_SMTP_CA_FILE": "/no/ca.pem"}
    with pytest.raises(SettingsError, match=r"smtp\.ca_file: .*DIGEST_SMTP_CA_FILE"):
        load_settings(None, env)


def test_without_tls_no_context_is_built() -> None:
    assert client_context(SmtpSettings(tls="none")) is None
    assert client_context(SmtpSettings(tls="starttls")) is not None
