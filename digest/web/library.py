"""The manage page's library import (upload) and the follow-these-authors form after it."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse

from digest.profile_files import MAX_OFFERED
from digest.usecases.following import follow
from digest.usecases.profile_imports import import_library
from digest.usecases.seeds import fetch_missing_now
from digest.web.security import verify_csrf
from digest.web.subscription import _manage_page, _subscriber
from digest.web.views import state

router = APIRouter()
IMPORT_PATH = r"^/manage/[^/]+/import$"  # the one route allowed a larger body (an upload)


@router.post("/manage/{token}/import", response_class=HTMLResponse)
async def manage_import(request: Request, token: str) -> HTMLResponse:
    services = state(request).services
    form = await request.form(max_files=1, max_fields=10)
    verify_csrf(request, services, form)
    subscriber = _subscriber(request, token)
    upload = form.get("library")
    data = await upload.read() if isinstance(upload, UploadFile) else b""
    await form.close()
    if not data:
        return _manage_page(
            request,
            token,
            subscriber,
            import_summary="Choose a file to import.",
            import_failed=True,
            status=400,
        )
    outcome = import_library(services, subscriber.id, data)
    library = outcome.library
    response = _manage_page(
        request,
        token,
        _subscriber(request, token),
        import_summary=library.summary(),
        import_failed=bool(library.error),
        offered_authors=library.offered_authors,
        status=400 if library.error else 200,
    )
    if library.seeds:
        response.background = BackgroundTask(
            state(request).jobs.submit,
            fetch_missing_now,
            services,
            library.seeds,
        )
    return response


@router.post("/manage/{token}/follow", response_class=HTMLResponse)
async def manage_follow(request: Request, token: str) -> HTMLResponse:
    """Follow the authors ticked after an import (only those: nothing is followed unasked)."""
    services = state(request).services
    form = await request.form(max_files=0, max_fields=MAX_OFFERED + 2)
    verify_csrf(request, services, form)
    subscriber = _subscriber(request, token)
    names = [n for n in form.getlist("author") if isinstance(n, str)][:MAX_OFFERED]
    followed = follow(services, subscriber.id, names)
    said = f"Now following: {'; '.join(followed)}." if followed else "No new author followed."
    return _manage_page(request, token, _subscriber(request, token), import_summary=said)
