"""`digest init` and `digest db upgrade | current`: the database schema."""

from __future__ import annotations

import typer
from rich.console import Console

from digest.cli.context import State, fail, state
from digest.cli.readable import DigestTyper
from digest.usecases import schema

commands = DigestTyper()
db_app = DigestTyper(
    help="Database schema.\n\n\b\nExample:\n    digest db upgrade", no_args_is_help=True
)


@commands.command()
def init(ctx: typer.Context) -> None:
    """Create the database, or bring it up to date.

    \b
    Example:
        DIGEST_DATABASE_URL=sqlite:///digest.db digest init
    """
    _upgrade(state(ctx))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Migrate the database to the newest schema (the Procfile's release step).

    \b
    Example:
        digest db upgrade
    """
    _upgrade(state(ctx))


def _upgrade(st: State) -> None:
    services = st.bare_services
    try:
        revision = schema.upgrade(services)
    except Exception as exc:  # any driver error becomes one line
        fail(f"database upgrade failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    Console().print(f"Database at revision {revision}.", highlight=False)


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the schema revision of the database.

    \b
    Example:
        digest db current
    """
    Console().print(schema.current_revision(state(ctx).services) or "not initialised")
