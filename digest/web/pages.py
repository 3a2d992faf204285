"""The landing page (today's trending papers and the subscribe form), subscribing, /healthz."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from digest.bootstrap import Services
from digest.render import safe_url, tldr
from digest.texts import unicode_text
from digest.usecases import front_page, health
from digest.usecases.seeds import fetch_missing_now
from digest.usecases.subscriptions import RequestMeta, keyed_hash, process_subscription
from digest.web.forms import FormError, parse_subscribe_form, timezones
from digest.web.security import check_ip_limit, client_ip, verify_csrf
from digest.web.views import form_data, page, state

router = APIRouter()
TRENDING_ON_LANDING = 15
SUMMARY_CHARS = 180


def trending_papers(services: Services) -> list[dict]:
    """Recent papers, most upvoted first, as plain data for the landing page."""
    rows = []
    for paper in front_page.trending(services, limit=TRENDING_ON_LANDING):
        fallback = f"https://arxiv.org/abs/{paper.arxiv_id}" if paper.arxiv_id else None
        rows.append(
            {
                "title": unicode_text(paper.title),
                "url": safe_url(paper.url) or fallback,
                "upvotes": paper.upvotes,
                "summary": tldr(
                    unicode_text(paper.abstract), paper.ai_summary, max_chars=SUMMARY_CHARS
                ),
            }
        )
    return rows


def _form_defaults(services: Services) -> dict[str, str]:
    settings = services.settings
    return {
        "email": "",
        "interests": "",
        "categories": "",
        "seed_papers": "",
        "timezone": settings.delivery.default_timezone,
        "delivery_hour": str(settings.delivery.default_hour),
        "frequency": "daily",
        "weekly_day": "0",
        "trending": "25",
        "authors": "",
        "muted": "",
        "papers_per_digest": "",
    }


def landing_context(services: Services, *, values=None, errors=None) -> dict:
    """The landing page's content; with no values or errors it is the same for every visitor
    (digest/web/landing.py serves that one from bytes rendered once)."""
    return {
        "papers": trending_papers(services),
        "values": values or _form_defaults(services),
        "errors": errors or {},
        "timezones": timezones(),
    }


def landing(request: Request, *, values=None, errors=None, status: int = 200) -> HTMLResponse:
    """The landing page with a visitor's own values and errors (a refused subscribe form)."""
    services = state(request).services
    context = landing_context(services, values=values, errors=errors)
    return page(request, "landing.html", status=status, **context)


@router.post("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request) -> HTMLResponse:
    """Validate and queue; the answer is the same page whatever the address's state."""
    web = state(request)
    services = web.services
    form = await form_data(request)
    verify_csrf(request, services, form)
    ip = client_ip(request, services.settings.web.trusted_proxies)
    check_ip_limit(services, ip)
    try:
        subscription = parse_subscribe_form(
            form, default_hour=services.settings.delivery.default_hour
        )
    except FormError as exc:
        values = {**_form_defaults(services)}
        values.update({k: v for k, v in form.items() if isinstance(v, str) and k in values})
        return landing(request, values=values, errors=exc.errors, status=400)
    meta = RequestMeta(
        ip_hash=keyed_hash(services, "ip", ip),
        ua_hash=keyed_hash(services, "ua", request.headers.get("user-agent", "")[:500]),
    )
    response = page(request, "check_inbox.html")
    # Queued only once the page has been sent, so the work (which differs by the address's
    # state) cannot share the visitor's wait even for CPU.
    response.background = BackgroundTasks()
    response.background.add_task(
        web.jobs.submit, process_subscription, services, subscription, meta
    )
    seeds = list(subscription.preferences.seed_papers)
    if seeds:  # the form's example 1706.03762 too: fetched, stored, used from the first digest
        response.background.add_task(web.jobs.submit, fetch_missing_now, services, seeds)
    return response


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """DB reachable, and how old the last successful fetch and the last edition are."""
    checked = health.check(state(request).services)
    if checked.database_error is not None:
        return JSONResponse(
            {"status": "error", "database": f"unreachable: {checked.database_error}"}, 503
        )
    return JSONResponse(
        {
            "status": "ok",
            "database": "ok",
            "papers": checked.papers,
            "last_fetch_age_s": checked.last_fetch_age_s,
            "last_edition_age_s": checked.last_edition_age_s,
        }
    )
