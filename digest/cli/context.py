"""What every command shares: the State behind --config/--set, one-line errors, --since.

The command modules import this; it imports none of them, and app.py imports them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from digest.bootstrap import Services, build
from digest.db import DatabaseError
from digest.settings import Settings, SettingsError, load_from_environment
from digest.usecases.schema import current_revision


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error and exit non-zero."""
    Console(stderr=True).print(f"[red]Error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@dataclass
class State:
    """What every command can reach: the settings (loaded lazily) and the services."""

    config: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None
    _services: Services | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_from_environment(self.config, self.overrides)
            except SettingsError as exc:
                fail(str(exc), 2)
            from digest.logs import configure_logging

            configure_logging(self._settings)
        return self._settings

    @property
    def bare_services(self) -> Services:
        """Services without checking the schema (for the commands that create it)."""
        if self._services is None:
            try:
                self._services = build(self.settings)
            except (SettingsError, DatabaseError) as exc:
                fail(str(exc), 2)
        return self._services

    @property
    def services(self) -> Services:
        """Services over a migrated database, or a one-line error saying how to get one."""
        services = self.bare_services
        try:
            revision = current_revision(services)
        except DatabaseError as exc:
            fail(str(exc), 2)
        if revision is None:
            fail("the database is not initialised: run `digest init`", 2)
        return services


def state(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)


def parse_since(value: str | None) -> datetime | None:
    """A --since value (YYYY-MM-DD or ISO datetime; naive means UTC) as aware UTC, else None."""
    if not value:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--since {value!r}: expected YYYY-MM-DD or an ISO date-time")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
