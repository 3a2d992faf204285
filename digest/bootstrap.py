"""The one composition root: Settings in, the wired services out. Opens nothing at import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Environment
from sqlalchemy import Engine

from digest.db import make_engine
from digest.render import make_environment
from digest.settings import Settings
from digest.signing import DkimSigner
from digest.tokens import Tokens


@dataclass
class Services:
    """Everything a use case needs, built once at an edge (CLI, web app, worker)."""

    settings: Settings
    engine: Engine
    templates: Environment
    tokens: Tokens
    http: Any = None
    dkim: DkimSigner | None = None

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings, *, http: Any = None, engine: Engine | None = None) -> Services:
    """Wire the services for these settings; `http` and `engine` may be injected by tests."""
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
        http=http,
        dkim=dkim,
    )
