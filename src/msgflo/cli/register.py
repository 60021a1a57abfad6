"""``msgflo-register --role ROLE:FILE``: announce programs that do not speak msgflo.

Each declaration (see :mod:`msgflo.foreign`) is sent as a discovery message, confirmed by the
broker, and re-sent every ``interval / 2.2`` seconds while ``--forever`` (the default), so the
coordinator keeps seeing the program as a participant.  Against the original: ``--no-forever``
really sends once and exits 0, a path may contain ``:``, every failure is one line and a
non-zero exit, and SIGTERM ends the heartbeat cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from msgflo.cli.common import broker_option, one_line_errors, run_command
from msgflo.control import DiscoveryResponder
from msgflo.foreign import load_declaration
from msgflo.participant import HEARTBEAT_DIVISOR, discovery_period
from msgflo.runner import setup_logging, until_stopped, within_grace
from msgflo.transport import Client, get_client

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


async def _announce(client: Client, definitions: Sequence[dict[str, Any]]) -> None:
    for definition in definitions:
        await client.register_participant(definition)
    await client.flush()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def register(
    broker: str,
    definitions: Sequence[dict[str, Any]],
    *,
    interval: float,
    forever: bool,
    connect_timeout: float = 30.0,
    stop: asyncio.Event | None = None,
) -> int:
    """Announce ``definitions`` once, print the ready line, and with ``forever`` keep
    announcing until ``stop`` is set (or SIGINT/SIGTERM arrives)."""
    stop = stop or asyncio.Event()
    ids = ", ".join(str(d["id"]) for d in definitions)
    client = get_client(broker, connect_timeout=connect_timeout)
    responder = DiscoveryResponder.of(client)

    async def announce() -> None:
        await _announce(client, definitions)

    # Signals count from before the ready line: a supervisor may stop us as soon as it reads it.
    with _stop_on_signals(stop) if forever else contextlib.nullcontext():
        await client.connect()
        try:
            if forever:  # listening before the ready line: a stop may come right after it
                await responder.add(announce)
            await _announce(client, definitions)
            click.echo(f"Sent discovery message for {ids}")
            client.on_reconnect(announce)
            while forever:
                try:
                    await asyncio.wait_for(stop.wait(), interval / HEARTBEAT_DIVISOR)
                    break
                except TimeoutError:
                    pass
                try:
                    await until_stopped(_announce(client, definitions), stop)
                except Exception as exc:  # the next round tries again; only a stop ends the loop
                    log.warning("failed to send discovery message for %s: %s", ids, exc)
        finally:
            await within_grace(responder.remove(announce))
            await within_grace(client.disconnect())
    return 0


def parse_role(value: str) -> tuple[str, Path]:
    """``ROLE:FILE``, split at the first colon so that the path may contain more of them."""
    role, sep, path = value.partition(":")
    if not sep or not role or not path:
        raise click.BadParameter(f"{value!r} is not ROLE:FILE", param_hint="--role")
    return role, Path(path)


def heartbeat_options(forever: bool) -> Callable[[F], F]:
    """The options both register commands share; only the default of ``--forever`` differs."""

    def decorate(func: F) -> F:
        func = click.option(
            "--connect-timeout", type=float, default=30.0, show_default=True, help="Seconds."
        )(func)
        func = click.option(
            "--forever/--no-forever",
            default=forever,
            show_default=True,
            help="Keep re-sending the discovery messages until stopped.",
        )(func)
        func = click.option(
            "--interval",
            type=click.FloatRange(min=0, min_open=True),
            help="Heartbeat period in seconds; messages go out every INTERVAL/2.2 s "
            "[default: MSGFLO_DISCOVERY_PERIOD or 60].",
        )(func)
        return broker_option(announce=True)(func)

    return decorate


def load_all(program: str, declarations: Sequence[tuple[str | None, Path]]) -> list[dict[str, Any]]:
    """Every declaration, validated before anything is sent: one bad file sends nothing."""
    with one_line_errors(program):
        return [load_declaration(path, role) for role, path in declarations]


def start(
    program: str,
    broker: str,
    definitions: Sequence[dict[str, Any]],
    interval: float | None,
    forever: bool,
    connect_timeout: float,
) -> None:
    setup_logging()
    try:
        period = interval or discovery_period()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    run_command(
        program,
        register(
            broker,
            definitions,
            interval=period,
            forever=forever,
            connect_timeout=connect_timeout,
        ),
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--role",
    "roles",
    multiple=True,
    metavar="ROLE:FILE",
    help="A role and its declaration (YAML or JSON); repeat for several.",
)
@heartbeat_options(forever=True)
def main(
    roles: tuple[str, ...],
    broker: str,
    interval: float | None,
    forever: bool,
    connect_timeout: float,
) -> None:
    """Announce foreign participants (programs that do not speak msgflo) to the coordinator.

    \b
    Example:
      msgflo-register --role switch1:switch.yml --role lamp:lamp.yml --no-forever
    """
    if not roles:
        raise click.UsageError("Missing option '--role ROLE:FILE'")
    definitions = load_all("msgflo-register", [parse_role(value) for value in roles])
    start("msgflo-register", broker, definitions, interval, forever, connect_timeout)
