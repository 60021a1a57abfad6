"""Pieces every command shares: the broker option, one-line errors and running a coroutine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from msgflo.errors import MsgfloError
from msgflo.logs import setup_logging
from msgflo.transport import Address, TransportError

F = TypeVar("F", bound=Callable[..., Any])


def broker_option(
    default: str | None = "amqp://localhost", *, announce: bool = False
) -> Callable[[F], F]:
    """``--broker`` with the original's environment fallbacks.

    With ``announce`` a broker that was not named on the command line is printed on stderr:
    a tool that silently talks to ``amqp://localhost`` while the network runs elsewhere looks
    as if it worked.
    """
    return click.option(
        "--broker",
        envvar=["MSGFLO_BROKER", "CLOUDAMQP_URL"],
        default=default,
        show_default=True,
        help="Broker URL (env MSGFLO_BROKER, then CLOUDAMQP_URL).",
        callback=_announce_broker if announce else None,
    )


def _announce_broker(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    source = ctx.get_parameter_source(param.name or "broker")
    if value is None or source is ParameterSource.COMMANDLINE:
        return value
    if source is ParameterSource.ENVIRONMENT:
        origin = "MSGFLO_BROKER" if os.environ.get("MSGFLO_BROKER") else "CLOUDAMQP_URL"
        why = f"from {origin}"
    else:
        why = "the default; set --broker or MSGFLO_BROKER"
    try:
        shown = Address.parse(value).redacted()
    except TransportError:
        shown = value  # the command reports the bad URL itself
    click.echo(f"{ctx.command_path}: using broker {shown} ({why})", err=True)
    return value


@contextlib.contextmanager
def one_line_errors(program: str) -> Iterator[None]:
    """End the command on any :class:`~msgflo.errors.MsgfloError`: ``PROGRAM: message`` on
    stderr and exit code 1. Every other exception is a bug and keeps its traceback."""
    try:
        yield
    except MsgfloError as exc:
        click.echo(f"{program}: {exc}", err=True)
        sys.exit(1)


def run_command(program: str, coro: Coroutine[Any, Any, int]) -> None:
    """Run ``coro``; a msgflo error (a broker that fails) is one line on stderr and exit code 1."""
    setup_logging()
    try:
        with one_line_errors(program):
            code = asyncio.run(coro)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)
