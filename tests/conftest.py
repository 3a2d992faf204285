"""Shared fixtures: a real SMTP server on loopback, fresh databases, settings and services."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from digest import bootstrap
from digest.bootstrap import Services
from digest.db import make_engine, upgrade
from digest.settings import DeliverySettings, RankingSettings, Settings, SmtpSettings
from digest.smtpd.sink import SinkHandler, SmtpSink

FIXTURES = Path(__file__).parent / "fixtures"
# Tests rank with the LSA backend unless they are about embeddings: the default backend embeds
# each paper it has not seen (~0.1 s a paper on this CPU), which would make the suite several
# times slower. The tests of the default itself (test_semantic.py, test_minilm.py and the demo
# test) ask for it. Set here for the processes tests start; the `settings` fixture below too.
TEST_TEXT_BACKEND = "tfidf"
os.environ.setdefault("DIGEST_RANKING__TEXT_BACKEND", TEST_TEXT_BACKEND)
PG_URL_VAR = "DIGEST_TEST_DATABASE_URL"


def postgres_url() -> str | None:
    """The test PostgreSQL URL; on CI its absence is an error, elsewhere tests skip."""
    url = os.environ.get(PG_URL_VAR)
    if not url and os.environ.get("CI"):
        pytest.fail(f"{PG_URL_VAR} must be set when CI is set")
    return url


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real aiosmtpd server on 127.0.0.1 keeping every message it accepts."""
    with SmtpSink(SinkHandler()) as sink:
        yield sink


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    url = postgres_url()
    if not url:
        pytest.skip(f"{PG_URL_VAR} not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in url else "?"
    yield f"{url}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs on a SQLite file and, where configured, on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def settings(sqlite_url: str, smtp_sink: SmtpSink) -> Settings:
    return Settings(
        mode="dev",
        database_url=sqlite_url,
        smtp=SmtpSettings(host=smtp_sink.host, port=smtp_sink.port, timeout_s=10),
        delivery=DeliverySettings(backoff_base_s=1.0),
        ranking=RankingSettings(text_backend=TEST_TEXT_BACKEND),
    )


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = bootstrap.build(settings, engine=make_engine(settings.database_url))
    upgrade(built.engine)
    yield built
    built.close()
