"""What every route shares: the app's services and clock, and rendering a page template."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from digest.bootstrap import Services
from digest.web.jobs import JobQueue
from digest.web.security import csrf_token, set_csrf_cookie


@dataclass
class WebState:
    services: Services
    jobs: JobQueue
    clock: Callable[[], float]


def state(request: Request) -> WebState:
    return request.app.state.web


def render(services: Services, template: str, **context: Any) -> str:
    context.setdefault("postal_address", services.settings.email.postal_address)
    return services.templates.get_template(f"web/{template}").render(**context)


def page(
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render templates/web/<template> with a CSRF token bound to this browser's cookie."""
    services = state(request).services
    context.setdefault("csrf_token", csrf_token(request, services))
    response = HTMLResponse(render(services, template, **context), status, headers=headers)
    set_csrf_cookie(request, services, response)
    return response


async def form_data(request: Request) -> dict[str, Any]:
    """The posted fields (urlencoded or multipart) as a plain dict; the last value wins."""
    form = await request.form(max_files=0, max_fields=200)
    return {key: value for key, value in form.items()}
