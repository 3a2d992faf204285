"""The FastAPI app factory: create_app(services) wires routes, defences and error pages."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from digest.bootstrap import Services
from digest.web import archive, feedback, landing, library, pages, rating, subscription
from digest.web.jobs import JobQueue
from digest.web.security import PageError, SecurityMiddleware, is_https
from digest.web.views import WebState, page, render

log = logging.getLogger(__name__)
_HTTP_KINDS = {404: "not_found", 405: "not_found", 400: "bad_request", 413: "too_large"}


def create_app(services: Services, *, clock: Callable[[], float] = time.time) -> FastAPI:
    """The web app over these services. `clock` (epoch seconds) lets tests age tokens."""
    jobs = JobQueue(services.settings.web.mail_workers)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.drain()
        jobs.shutdown()

    app = landing.FrontPageApp(
        title="Trending papers digest",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.web = WebState(services=services, jobs=jobs, clock=clock)

    _error_pages(app)
    # The landing page and the icon are served from bytes, by plain Starlette routes.
    app.add_route("/", landing.landing, methods=["GET", "HEAD"])
    app.add_route("/favicon.ico", _favicon(), methods=["GET", "HEAD"])
    app.include_router(pages.router)
    app.include_router(subscription.router)
    app.include_router(library.router)
    app.include_router(feedback.router)
    app.include_router(rating.router)
    app.include_router(archive.router)
    static_dir = services.settings.templates_dir / "web" / "static"
    app.mount("/static", StaticFiles(directory=static_dir), name="static")
    app.add_middleware(
        SecurityMiddleware,
        max_body=services.settings.web.max_body_bytes,
        uploads=(library.IMPORT_PATH, services.settings.web.max_upload_bytes),
        https=is_https(services),
        too_large=lambda: render(services, "status.html", kind="too_large", csrf_token="").encode(
            "utf-8"
        ),
    )
    return app


def _error_pages(app: FastAPI) -> None:
    """Every error (ours, Starlette's, a bad form) answers with the status page, never JSON."""

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> HTMLResponse:
        return page(request, "status.html", status=exc.status, headers=exc.headers, kind=exc.kind)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> HTMLResponse:
        kind = _HTTP_KINDS.get(exc.status_code, "bad_request")
        return page(request, "status.html", status=exc.status_code, kind=kind)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> HTMLResponse:
        return page(request, "status.html", status=400, kind="bad_request")


def _favicon() -> Callable[[Request], Awaitable[Response]]:
    """The icon route. Binary, so it ships with the code rather than among the templates."""
    favicon = resources.files("digest.web").joinpath("favicon.ico").read_bytes()

    async def favicon_ico(request: Request) -> Response:
        return Response(
            favicon,
            media_type="image/vnd.microsoft.icon",
            headers={"Cache-Control": "public, max-age=604800"},
        )

    return favicon_ico
