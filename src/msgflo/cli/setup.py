"""``msgflo-setup GRAPH``: make a graph's bindings on the broker, optionally starting participants.

One-shot by default.  Without ``--discover`` queue names follow the ``role.PORT`` convention, as
in the original; with it they come from the participants' discovery messages.  Bindings on MQTT
exist only while this process forwards them, hence ``--forever``.  Participants started with
``--participants`` are children of this process: it stays to supervise them until Ctrl-C
rather than leaving them orphaned as the original did.

``--check`` changes nothing: it compares what is bound on the broker with the graph
(:mod:`msgflo.observe.bindings`) and prints one line per missing, stale or extra binding.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import click

from msgflo.cli.common import broker_option, one_line_errors, run_command
from msgflo.cli.msgflo import Printer, load_library, read_graph
from msgflo.coordinator import Coordinator, CoordinatorOptions, EventKind
from msgflo.library import Library
from msgflo.observe.bindings import check
from msgflo.runner import DEFAULT_BROKER
from msgflo.transport import Address, get_broker
from msgflo.wiring import GraphSpec, Status, pretty_format

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
PROGRAM = "msgflo-setup"


def _names(values: tuple[str, ...]) -> list[str]:
    """``--only a,b --only c``: comma lists, repeatable."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


async def setup(
    graph: dict[str, Any],
    broker: str,
    library: Library | None,
    options: CoordinatorOptions,
    *,
    timeout: float,
    forever: bool,
    forward: frozenset[str],
) -> int:
    spec = GraphSpec.from_json(graph)
    coordinator = Coordinator(get_broker(broker), library, options)
    printer = Printer(forward, coordinator, held=None)
    coordinator.add_listener(
        lambda event: (
            printer(event)
            if event.kind in (EventKind.OUTPUT, EventKind.WARNING, EventKind.ERROR)
            else None
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        await coordinator.start()
        await coordinator.load_graph(graph)
        started = sorted(coordinator.children)
        click.echo(f"Set up participants: {', '.join(started) or '(none)'}")
        if not await coordinator.settled(timeout):
            pending = [p.detail for p in coordinator.wiring.values() if p.status is Status.PENDING]
            click.echo(
                f"{PROGRAM}: error: participant discovery timed out after {timeout:g} s: "
                + "; ".join(pending),
                err=True,
            )
            code = 1
        bindings = [p.binding for p in coordinator.wiring.values() if p.binding is not None]
        click.echo("Set up bindings:")
        if bindings:
            click.echo(pretty_format(bindings))
        if any(p.status is Status.ERROR for p in coordinator.wiring.values()):
            code = 1
        sys.stdout.flush()
        if forever or started:
            why = "--forever enabled" if forever else "supervising the participants"
            click.echo(f"{why}, keeping alive (Ctrl-C stops)")
            sys.stdout.flush()
            await stop.wait()
        elif Address.parse(broker).scheme.startswith("mqtt") and bindings and spec.edges:
            click.echo(
                f"{PROGRAM}: warning: MQTT bindings are forwarded by this process and end with "
                "it; use --forever",
                err=True,
            )
    finally:
        await coordinator.stop()
    return code


async def check_bindings(graph: dict[str, Any], broker: str, timeout: float) -> int:
    connection = get_broker(broker, connect_timeout=timeout)
    await connection.connect()
    try:
        differences, errors = await check(connection, graph)
    finally:
        await connection.disconnect()
    for error in errors:
        click.echo(f"error: {error}")
    for difference in differences:
        click.echo(difference.line())
    if not differences and not errors:
        click.echo("bindings match the graph")
    return 1 if differences or errors else 0


@click.command(context_settings=CONTEXT)
@click.argument("graph", type=click.Path(dir_okay=False, path_type=Path))
@broker_option(DEFAULT_BROKER, announce=True)
@click.option(
    "--participants/--no-participants",
    default=False,
    show_default=True,
    help="Also start the participants (then stay to supervise them).",
)
@click.option("--only", multiple=True, metavar="ROLES", help="Start only these roles (comma list).")
@click.option(
    "--ignore", multiple=True, metavar="ROLES", help="Do not start these roles (comma list)."
)
@click.option(
    "--library",
    "library_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Library configuration (fbp-config.json, package.json or pyproject.toml).",
)
@click.option("--componentdir", multiple=True, help="Directory of component files (repeatable).")
@click.option("--forward", default="", help="Child output streams to show: stdout,stderr.")
@click.option(
    "--discover/--no-discover",
    default=False,
    show_default=True,
    help="Take queue names from discovery instead of the role.PORT convention.",
)
@click.option(
    "--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for discovery."
)
@click.option(
    "--forever/--no-forever",
    default=False,
    show_default=True,
    help="Keep running after setup (needed for MQTT, where this process forwards).",
)
@click.option("--shell", help="Run each participant command as SHELL -c COMMAND.")
@click.option(
    "--check",
    is_flag=True,
    help="Change nothing: compare the broker's bindings with GRAPH, one line per difference, "
    "exit 1 on any (RabbitMQ: needs the management plugin; MQTT: reads the binders' records).",
)
def main(
    graph: Path,
    broker: str,
    participants: bool,
    only: tuple[str, ...],
    ignore: tuple[str, ...],
    library_file: Path | None,
    componentdir: tuple[str, ...],
    forward: str,
    discover: bool,
    timeout: float,
    forever: bool,
    shell: str | None,
    check: bool,
) -> None:
    """Set up the broker bindings of GRAPH (.fbp or .json) and print them."""
    with one_line_errors(PROGRAM):
        library = load_library(library_file, componentdir) if participants else None
        graph_json = read_graph(graph)
        spec = GraphSpec.from_json(graph_json)
    if check:
        run_command(PROGRAM, check_bindings(graph_json, broker, timeout))
    roles = spec.participant_roles()
    chosen = _names(only)
    unknown = [role for role in chosen if role not in spec.processes]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)} not in {graph} (has: {', '.join(roles)})", param_hint="--only"
        )
    skipped = set(_names(ignore)) | ({r for r in roles if r not in chosen} if chosen else set())
    options = CoordinatorOptions(
        broker_url=broker,
        ignore=tuple(sorted(skipped)),
        static=not discover,
        send_iips=discover,
        iips_in_command=not discover,
        start_participants=participants,
        shell=shell,
        wait_timeout=timeout + 1,  # the summary of what is missing comes first
    )
    streams = frozenset(s.strip() for s in forward.split(",") if s.strip())
    with one_line_errors(PROGRAM):
        code = asyncio.run(
            setup(
                graph_json,
                broker,
                library,
                options,
                timeout=timeout,
                forever=forever,
                forward=streams,
            )
        )
    sys.exit(code)
