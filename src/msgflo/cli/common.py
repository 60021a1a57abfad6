"""Pieces every command shares: the broker option and running a coroutine with clean errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from msgflo.runner import setup_logging
from msgflo.transport import TransportError

F = TypeVar("F", bound=Callable[..., Any])


def broker_option(default: str | None = "amqp://localhost") -> Callable[[F], F]:
    return click.option(
        "--broker",
        envvar=["MSGFLO_BROKER", "CLOUDAMQP_URL"],
        default=default,
        show_default=True,
        help="Broker URL (env MSGFLO_BROKER, then CLOUDAMQP_URL).",
    )


def run_command(program: str, coro: Coroutine[Any, Any, int]) -> None:
    """Run ``coro``; a broker failure is one line on stderr and exit code 1, never a traceback."""
    setup_logging()
    try:
        code = asyncio.run(coro)
    except TransportError as exc:
        click.echo(f"{program}: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)
