"""Help that reads like a manual: `--tz ZONE`, `EMAIL`, and nothing after a plain flag.

Typer labels values by their Python type (`<str>`, `<list[str]>`, `<bool>`) and wraps required
arguments in braces (`{email}`). Commands built by `DigestTyper` name each value by what it is
instead: an explicit `metavar=` wins, then the parameter's name, then its click type.
"""

from __future__ import annotations

from typing import Any, get_args

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import UsageError
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

# What a value is, by parameter name; the rest fall back to their click type.
NAMES = {
    "email": "EMAIL",
    "to": "EMAIL",
    "sender": "EMAIL",
    "tz": "ZONE",
    "hour": "HOUR",
    "source": "NAME",
    "name": "NAME",
    "fmt": "FORMAT",
    "since": "DATE",
    "status": "STATUS",
    "category": "CATEGORY",
    "seed_paper": "ARXIV_ID",
    "like": "ARXIV_ID",
    "dislike": "ARXIV_ID",
    "interests": "TEXT",
    "set_": "KEY=VALUE",
    "host": "HOST",
    "port": "PORT",
    "workers": "N",
    "out": "PATH",
    "config": "FILE",
    "papers": "FILE",
    "profiles": "FILE",
    "file": "FILE",
}


def _by_type(param: Any) -> str:
    desc = param.type_descriptor
    if desc.is_path:
        return "PATH"
    if desc.is_choice:
        return "|".join(str(c) for c in desc.choices or ())
    annotation = get_args(desc.annotation)[0] if desc.is_list else desc.annotation
    if annotation is int:
        return "N"
    if annotation is float:
        return "NUMBER"
    return "TEXT"


def value_name(param: Any) -> str:
    if param.metavar:
        return param.metavar
    return NAMES.get(param.name or "", _by_type(param))


class ReadableOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None  # a flag takes no value: show none
        return value_name(self)


class ReadableArgument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the argument's own name already says what it is

    @property
    def display_name_raw(self) -> str:  # type: ignore[override]
        return value_name(self)

    def _usage_display_name(self) -> str:
        name = value_name(self) if self.required else f"[{value_name(self)}]"
        return name + ("..." if self.nargs != 1 else "")


def _readable(params: list[Any]) -> list[Any]:
    # Swapping the class keeps every parsed setting; only how the parameter is shown changes.
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = ReadableOption
        elif type(param) is TyperArgument:
            param.__class__ = ReadableArgument
    return params


def _one_line(error: UsageError) -> typer.Exit:
    """A usage error as one line on stderr (Typer draws a boxed panel under a usage line)."""
    where = f" (see `{error.ctx.command_path} --help`)" if error.ctx else ""
    message = " ".join(error.format_message().split())
    Console(stderr=True).print(
        f"[red]Error:[/red] {escape(message)}{where}", highlight=False, soft_wrap=True
    )
    return typer.Exit(error.exit_code)


def _usage_errors_in_one_line(method: Any) -> Any:
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except UsageError as error:
            if type(error).__name__ == "NoArgsIsHelpError":  # help was asked for, in effect
                raise
            raise _one_line(error) from None

    return wrapped


class ReadableCommand(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _readable(super().get_params(ctx))

    make_context = _usage_errors_in_one_line(TyperCommand.make_context)


class ReadableGroup(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _readable(super().get_params(ctx))

    make_context = _usage_errors_in_one_line(TyperGroup.make_context)
    resolve_command = _usage_errors_in_one_line(TyperGroup.resolve_command)


class DigestTyper(typer.Typer):
    """A Typer app whose commands and groups show readable value names in their help."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", ReadableGroup)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", ReadableCommand)
        return super().command(*args, **kwargs)
