"""The web app for process managers that import it: `digest serve --workers N` starts N
uvicorn workers, each building its own services from the environment (settings are read the
same way as the CLI reads them; `digest serve` turns its --config and --set into variables)."""

from __future__ import annotations

from fastapi import FastAPI

from digest.bootstrap import build
from digest.settings import load_from_environment


def create_app_from_environment() -> FastAPI:
    from digest.logs import redact_server_logs
    from digest.web import create_app

    settings = load_from_environment()
    # The worker set up uvicorn's loggers before loading the app: mask tokens in them now.
    redact_server_logs(settings)
    return create_app(build(settings))
