"""``msgflo-monitor``: fail when a system's output stops, or watch a whole network's edges.

Queue mode (``--queue``) watches queues on the broker and exits 1 after ``--fail-missed``
periods without a message (running ``--exec`` first); network mode (``--runtime``) shows a
runtime's edges and nodes as a live table, or prints one JSON snapshot with ``--once``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import click
import orjson
from rich.console import Console
from rich.live import Live

from msgflo.cli.common import broker_option, run_command
from msgflo.observe.monitor import MonitorOptions, QueueMonitor, parse_duration
from msgflo.observe.terminal import SnapshotError, fetch, http_base, render
from msgflo.runner import DEFAULT_BROKER
from msgflo.transport import get_broker

PROGRAM = "msgflo-monitor"


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def watch_queues(broker_url: str, options: MonitorOptions, connect_timeout: float) -> int:
    broker = get_broker(broker_url, connect_timeout=connect_timeout)
    await broker.connect()
    try:
        monitor = QueueMonitor(broker, options)
        await monitor.start()
        return await monitor.run(_stop_event())
    finally:
        await broker.disconnect()


async def watch_network(runtime: str, secret: str | None, once: bool, interval: float) -> int:
    base = http_base(runtime)
    if once:
        sys.stdout.buffer.write(orjson.dumps(await fetch(base, secret)) + b"\n")
        sys.stdout.flush()
        return 0
    snapshot = await fetch(base, secret)  # a runtime that cannot be read at all is an error
    stop = _stop_event()
    console = Console()
    with Live(render(snapshot), console=console, auto_refresh=False) as live:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                break
            try:
                snapshot = await fetch(base, secret)
                live.update(render(snapshot), refresh=True)
            except SnapshotError as exc:  # shown, and tried again at the next refresh
                live.update(render(snapshot, f"{exc} (showing the last snapshot)"), refresh=True)
    return 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--queue", "queues", multiple=True, help="Queue/topic to watch (repeatable).")
@click.option(
    "--expect-periodic",
    callback=_duration,
    metavar="DURATION",
    help="A message is expected every DURATION (500ms, 1s, 2m) on each --queue.",
)
@click.option(
    "--fail-missed",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Fail after this many periods without a message.",
)
@click.option("--exec", "command", help="Shell command to run on failure (before exiting).")
@click.option(
    "--keep-running",
    is_flag=True,
    help="After a failure (and --exec), keep watching instead of exiting 1.",
)
@broker_option(DEFAULT_BROKER)
@click.option("--connect-timeout", type=float, default=30.0, show_default=True, help="Seconds.")
@click.option("--runtime", help="Network mode: a runtime's address (ws://host:port).")
@click.option("--secret", envvar="MSGFLO_SECRET", help="The runtime's secret (env MSGFLO_SECRET).")
@click.option("--once", is_flag=True, help="Network mode: print one JSON snapshot and exit.")
@click.option(
    "--interval",
    callback=_duration,
    default="1s",
    show_default=True,
    metavar="DURATION",
    help="Network mode: refresh period.",
)
def main(
    queues: tuple[str, ...],
    expect_periodic: float | None,
    fail_missed: int,
    command: str | None,
    keep_running: bool,
    broker: str,
    connect_timeout: float,
    runtime: str | None,
    secret: str | None,
    once: bool,
    interval: float,
) -> None:
    """Watch queues for expected traffic, or a runtime's network.

    \b
    Examples:
      msgflo-monitor --queue sensor.NEWVALUE --expect-periodic 1s --fail-missed 3
      msgflo-monitor --runtime ws://127.0.0.1:3569 --secret S
      msgflo-monitor --runtime ws://127.0.0.1:3569 --once | jq .edges
    """
    if runtime is not None:
        if queues:
            raise click.UsageError("give either --queue or --runtime, not both")
        try:
            code = asyncio.run(watch_network(runtime, secret, once, interval or 1.0))
        except SnapshotError as exc:
            click.echo(f"{PROGRAM}: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)
        sys.exit(code)
    if not queues:
        raise click.UsageError("give --queue QUEUE (with --expect-periodic) or --runtime URL")
    if expect_periodic is None:
        raise click.UsageError("--queue needs --expect-periodic DURATION (e.g. 1s)")
    if once:
        raise click.UsageError("--once belongs to network mode (--runtime)")
    options = MonitorOptions(queues, expect_periodic, fail_missed, command, keep_running)
    run_command(PROGRAM, watch_queues(broker, options, connect_timeout))
