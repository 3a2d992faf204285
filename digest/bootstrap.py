"""The one composition root: Settings in, the wired services out. Opens nothing at import."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jinja2 import Environment

from digest.db import make_engine
from digest.mailer import SmtpConnection, client_context
from digest.render import make_environment
from digest.settings import Settings
from digest.signing import DkimSigner
from digest.sources.fetch import Fetchers
from digest.store import uow
from digest.store.embeddings import SessionEmbeddings
from digest.store.uow import Engine
from digest.tokens import Tokens

if TYPE_CHECKING:
    from digest.ranking.semantic import EmbeddingStore


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """Everything a use case needs, built once at an edge (CLI, web app, worker)."""

    settings: Settings
    engine: Engine
    templates: Environment
    tokens: Tokens
    fetchers: Fetchers
    dkim: DkimSigner | None = None
    clock: Callable[[], datetime] = field(default=utc_now)
    smtp_tls: ssl.SSLContext | None = None
    # Where the sentence embeddings of papers and interest texts live, inside a unit of work:
    # the database by default; a benchmark or test may hand in another EmbeddingStore.
    embedding_store: Callable[[uow.Tx, datetime], EmbeddingStore] = SessionEmbeddings

    def smtp_connection(self) -> SmtpConnection:
        """A new session to the relay (opened on first send), trusting what build() set up."""
        return SmtpConnection(self.settings.smtp, tls_context=self.smtp_tls)

    @contextmanager
    def transaction(self) -> Iterator[uow.Tx]:
        """One unit of work: commits when the block ends, rolls back when it raises."""
        with uow.transaction(self.engine) as tx:
            yield tx

    @contextmanager
    def reading(self) -> Iterator[uow.Tx]:
        """A session for reads, or for a use case that commits step by step itself."""
        with uow.reading(self.engine) as tx:
            yield tx

    def close(self) -> None:
        self.engine.dispose()


def build(
    settings: Settings, *, fetchers: Fetchers | None = None, engine: Engine | None = None
) -> Services:
    """Wire the services for these settings; `fetchers` and `engine` may be injected by tests."""
    email = settings.email
    dkim = None
    if email.dkim_domain and email.dkim_selector and email.dkim_key_path:
        dkim = DkimSigner.from_file(
            domain=email.dkim_domain, selector=email.dkim_selector, key_path=email.dkim_key_path
        )
    return Services(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        templates=make_environment(settings.templates_dir),
        tokens=Tokens(settings.signing_keys()),
        fetchers=fetchers or Fetchers(settings.fetch),
        dkim=dkim,
        smtp_tls=client_context(settings.smtp),
    )
