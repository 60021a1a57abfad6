"""``msgflo-register --role ROLE:FILE``: announce programs that do not speak msgflo.

Each declaration (see :mod:`msgflo.foreign`) is sent as a discovery message, confirmed by the
broker, and re-sent every ``interval / 2.2`` seconds while ``--forever`` (the default), so the
coordinator keeps seeing the program as a participant.  Against the original: ``--no-forever``
really sends once and exits 0, a path may contain ``:``, every failure is one line and a
non-zero exit, and SIGTERM ends the heartbeat cleanly.

A declaration with ``on_traffic: 30s`` (or every declaration, with ``--on-traffic 30s``) is
announced only while messages on its outqueues were seen within that window: the outqueues are
read beside their consumers (as ``msgflo-monitor`` does), so a device that stops sending drops
out of the coordinator's registry after the discovery period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from msgflo.cli.common import broker_option, one_line_errors, run_command
from msgflo.control import DiscoveryResponder
from msgflo.foreign import load_declaration
from msgflo.logs import setup_logging
from msgflo.observe.monitor import parse_duration
from msgflo.presence import HEARTBEAT_DIVISOR, discovery_period
from msgflo.runner import until_stopped, within_grace
from msgflo.transport import Binding, Broker, Client, get_broker, get_client

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


class Traffic:
    """When each on-traffic participant's outqueues last carried a message."""

    def __init__(self, client: Client, definitions: Sequence[dict[str, Any]]) -> None:
        self.client = client
        self.definitions = definitions
        self.windows: dict[str, float] = {}
        self.seen: dict[str, float] = {}

    def live(self, definition: dict[str, Any]) -> bool:
        window = self.windows.get(definition["id"])
        if window is None:
            return True
        last = self.seen.get(definition["id"])
        return last is not None and time.monotonic() - last <= window

    async def watch(self, windows: dict[str, float]) -> None:
        """Read every outqueue of the on-traffic participants, beside its consumers."""
        self.windows = windows
        if not windows:
            return
        assert isinstance(self.client, Broker)
        queues = {
            str(port["queue"]): [d for d in self.definitions if d["id"] in windows]
            for d in self.definitions
            if d["id"] in windows
            for port in d["outports"]
        }
        for queue in queues:
            await self.client.subscribe_data(Binding(queue, queue), self._seen)

    async def _seen(self, binding: Binding, _data: Any) -> None:
        for definition in self.definitions:
            if definition["id"] not in self.windows or not any(
                p["queue"] == binding.src for p in definition["outports"]
            ):
                continue
            was_live = self.live(definition)
            self.seen[definition["id"]] = time.monotonic()
            if not was_live:  # back: announced now, not at the next heartbeat
                await self.client.register_participant(definition)


async def register(
    broker: str,
    definitions: Sequence[dict[str, Any]],
    *,
    interval: float,
    forever: bool,
    connect_timeout: float = 30.0,
    stop: asyncio.Event | None = None,
    on_traffic: dict[str, float] | None = None,
) -> int:
    """Announce ``definitions`` once, print the ready line, and with ``forever`` keep
    announcing until ``stop`` is set (or SIGINT/SIGTERM arrives).  Those in ``on_traffic``
    (id to window in seconds) are announced only while their outqueues carry traffic."""
    stop = stop or asyncio.Event()
    windows = on_traffic or {}
    ids = ", ".join(str(d["id"]) for d in definitions if d["id"] not in windows)
    client = (get_broker if windows else get_client)(broker, connect_timeout=connect_timeout)
    responder = DiscoveryResponder.of(client)
    traffic = Traffic(client, definitions)

    async def announce() -> None:
        await _announce(client, [d for d in definitions if traffic.live(d)])

    # Signals count from before the ready line: a supervisor may stop us as soon as it reads it.
    with _stop_on_signals(stop) if forever else contextlib.nullcontext():
        await client.connect()
        try:
            if forever:  # listening before the ready line: a stop may come right after it
                await responder.add(announce)
            await traffic.watch(windows)
            await announce()
            click.echo(_ready_line(ids, definitions, windows))
            client.on_reconnect(announce)
            while forever:
                try:
                    await asyncio.wait_for(stop.wait(), interval / HEARTBEAT_DIVISOR)
                    break
                except TimeoutError:
                    pass
                try:
                    await until_stopped(announce(), stop)
                except Exception as exc:  # the next round tries again; only a stop ends the loop
                    log.warning("failed to send discovery message for %s: %s", ids, exc)
        finally:
            await within_grace(responder.remove(announce))
            await within_grace(client.disconnect())
    return 0


def _ready_line(ids: str, definitions: Sequence[dict[str, Any]], windows: dict[str, float]) -> str:
    parts = [f"Sent discovery message for {ids}"] if ids else []
    for definition in definitions:
        if definition["id"] in windows:
            window = windows[definition["id"]]
            parts.append(f"announcing {definition['id']} while its traffic is seen ({window:g} s)")
    return "; ".join(parts)


def on_traffic_windows(
    definitions: Sequence[dict[str, Any]], default: float | None, forever: bool
) -> dict[str, float]:
    """Take ``on_traffic`` out of each definition (it is not a discovery field): id to window."""
    windows: dict[str, float] = {}
    for definition in definitions:
        raw = definition.pop("on_traffic", None)
        where = f"declaration of {definition['id']}"
        if raw is None and default is None:
            continue
        try:
            window = default if raw is None else parse_duration(str(raw))
        except ValueError as exc:
            raise click.ClickException(f"{where}: 'on_traffic': {exc}") from None
        assert window is not None
        if not definition["outports"]:
            raise click.ClickException(f"{where}: 'on_traffic' needs outports whose traffic to see")
        windows[definition["id"]] = window
    if windows and not forever:
        raise click.UsageError("on-traffic announcing needs --forever")
    return windows


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
    on_traffic: float | None = None,
) -> None:
    setup_logging()
    try:
        period = interval or discovery_period()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    windows = on_traffic_windows(definitions, on_traffic, forever)
    run_command(
        program,
        register(
            broker,
            definitions,
            interval=period,
            forever=forever,
            connect_timeout=connect_timeout,
            on_traffic=windows,
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
@click.option(
    "--on-traffic",
    metavar="DURATION",
    help="Announce each participant only while its outqueues carried a message within "
    "DURATION (500ms, 30s, 2m); a declaration's 'on_traffic' key does the same for it alone.",
)
@heartbeat_options(forever=True)
def main(
    roles: tuple[str, ...],
    on_traffic: str | None,
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
    try:
        window = parse_duration(on_traffic) if on_traffic is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--on-traffic") from exc
    start("msgflo-register", broker, definitions, interval, forever, connect_timeout, window)
