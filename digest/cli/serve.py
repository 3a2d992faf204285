"""`digest serve`: the web app under uvicorn, with as many workers as the machine allows."""

from __future__ import annotations

import typer

from digest.cli.context import fail, state
from digest.cli.readable import DigestTyper

commands = DigestTyper()


def default_web_workers() -> int:
    """$WEB_CONCURRENCY (the Procfile convention), else one worker per CPU this process may use."""
    import os

    given = os.environ.get("WEB_CONCURRENCY", "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            fail(f"WEB_CONCURRENCY={given!r}: expected a whole number of at least 1", 2)
        return int(given)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@commands.command()
def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Default: web.host."),
    port: int | None = typer.Option(None, "--port", help="Default: web.port."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Worker processes (default: $WEB_CONCURRENCY, else CPUs)."
    ),
) -> None:
    """Run the web app (subscribe, confirm, manage, unsubscribe). It never runs the scheduler.

    \b
    Rate limits and confirmation budgets live in the database, so any number of workers (and
    of `digest serve` processes) share them.

    \b
    Examples:
        digest serve --host 0.0.0.0 --port 8000
        WEB_CONCURRENCY=4 digest serve --port 8000
    """
    import os

    import uvicorn

    from digest.logs import redact_server_logs
    from digest.web import create_app

    st = state(ctx)
    services = st.services
    host = host or services.settings.web.host
    port = port or services.settings.web.port
    workers = workers or default_web_workers()
    if workers == 1:
        config = uvicorn.Config(
            create_app(services), host=host, port=port, proxy_headers=False, log_level="info"
        )
        redact_server_logs(services.settings)  # after Config set up uvicorn's loggers
        uvicorn.Server(config).run()
        return
    services.close()
    # Each worker loads the settings itself: hand it --config and --set as variables.
    if st.config is not None:
        os.environ["DIGEST_CONFIG"] = str(st.config)
    for key, value in st.overrides.items():
        os.environ["DIGEST_" + "__".join(key.split(".")).upper()] = str(value)
    uvicorn.run(
        "digest.web.asgi:create_app_from_environment",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        proxy_headers=False,
        log_level="info",
    )
