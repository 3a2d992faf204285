"""`digest worker`: the scheduler process (fetch, plan, send) until SIGTERM or Ctrl-C."""

from __future__ import annotations

import typer

from digest.cli.context import fail, state
from digest.cli.readable import DigestTyper
from digest.cli.send import refuse_placeholders

commands = DigestTyper()


@commands.command()
def worker(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="Worker name in the ledger and logs."),
    send_only: bool = typer.Option(
        False, "--send-only", help="Only send; never take the scheduler role (fetch, plan)."
    ),
) -> None:
    """Run the scheduler: fetch sources, plan editions, send due deliveries.

    \b
    Any number of workers may run against one PostgreSQL database: one holds the scheduler
    lease (fetch, plan), every one sends. On SQLite a second worker refuses to start.
    SIGTERM or Ctrl-C: stop claiming, finish in-flight messages, exit 0.

    \b
    Examples:
        digest worker --name worker-1
        digest worker --send-only
    """
    import logging

    from digest.usecases.leases import WorkerLockError
    from digest.usecases.scheduler import run_worker

    refuse_placeholders(state(ctx).settings)  # a worker sends: same rule as `digest send`
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        code = run_worker(state(ctx).services, name=name, run_scheduler=not send_only)
    except WorkerLockError as exc:
        fail(str(exc))
    raise typer.Exit(code)
