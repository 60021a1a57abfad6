"""``msgflo``: run a graph as a distributed network and keep it running.

Starts the participants the library can start, wires every edge as participants announce
themselves, sends IIPs, restarts what dies, and on SIGINT/SIGTERM stops every child it started.
With no broker configured it runs an embedded MQTT broker and hands its URL to the children.
It also serves the FBP network protocol (docs/runtime.md) on ``--host``/``--port``, so that
Flowhub, fbp-spec and fbp-test can see and edit the running network.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from msgflo.broker import configured_broker, embedded_broker
from msgflo.cli.common import one_line_errors
from msgflo.coordinator import Coordinator, CoordinatorOptions, Event, EventKind
from msgflo.coordinator.autoscaler import Autoscaler, starting_instances
from msgflo.definition import queue_name
from msgflo.deploy.autoscale import AutoscaleError, RoleScaling, for_roles, load_config
from msgflo.deploy.roles import Role, fed_inports
from msgflo.graph import Graph, GraphError, load_graph
from msgflo.library import Library
from msgflo.logs import setup_logging
from msgflo.runtime import (
    MAIN_GRAPH,
    Access,
    Endpoint,
    Runtime,
    RuntimeOptions,
    live_url,
    serve,
)
from msgflo.runtime.api import queue_line
from msgflo.runtime.ping import DEFAULT_URL, AlivePing, alive_ping
from msgflo.transport import Address, get_broker
from msgflo.wiring import VIRTUAL_COMPONENTS

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
PROGRAM = "msgflo"


class GraphFileError(GraphError):
    """The graph file cannot be read or parsed; the message names the file."""


def read_graph(path: Path) -> dict[str, Any]:
    """fbp-graph JSON from a ``.fbp`` or ``.json`` file."""
    return read_graph_model(path).to_json()


def read_graph_model(path: Path) -> Graph:
    try:
        return load_graph(path)
    except GraphError as exc:
        raise GraphFileError(str(exc)) from exc


@dataclass
class ServerSettings:
    """Where the FBP runtime listens and who may use it."""

    host: str
    port: int
    ide: str
    runtime: RuntimeOptions
    ping: AlivePing = field(default_factory=AlivePing)


def load_library(config: Path | None, componentdirs: Sequence[str]) -> Library:
    return Library.load(config, list(componentdirs) or None, root=Path.cwd())


def _unscalable(role: str, component: str, library: Library, ignore: Sequence[str]) -> str:
    """Why msgflo cannot run copies of ``role``, or ``""`` when it can."""
    if role in ignore:
        return "is ignored (--ignore)"
    found = library.find(component)
    if found is None:
        return f"has component {component!r}, which is not in the library"
    if not found.startable:
        return f"has component {component!r}, which runs elsewhere (foreign)"
    return ""


def autoscale_config(
    path: Path, graph_file: Path, library: Library, ignore: Sequence[str]
) -> list[RoleScaling]:
    """The entries of an autoscale file bound to the graph's roles; every one must be a role
    this command starts (not ignored, not foreign) with one inqueue to count."""
    graph = read_graph_model(graph_file)
    roles = [
        Role(
            name,
            node.component or "",
            "",
            (),
            tuple(queue_name(name, port) for port in fed_inports(graph, name)),
        )
        for name, node in graph.nodes.items()
        if node.component not in VIRTUAL_COMPONENTS
    ]
    scalings = for_roles(load_config(path), roles, str(path))
    for scaling in scalings:
        why = _unscalable(
            scaling.worker, graph.nodes[scaling.worker].component or "", library, ignore
        )
        if why:
            raise AutoscaleError(
                f"{path}: {scaling.name}: role {scaling.worker!r} {why}; msgflo can only scale "
                "the participants it starts"
            )
    return scalings


PARTICIPANT_EVENTS = frozenset(
    {
        EventKind.PARTICIPANT_ADDED,
        EventKind.PARTICIPANT_UPDATED,
        EventKind.PARTICIPANT_GONE,
        EventKind.PARTICIPANT_BACK,
    }
)


@dataclass
class Printer:
    """Turns coordinator events into lines; holds them back until the ready line is out.

    A participant of the graph gets a line with its queues whenever they change (what
    ``msgflo-send-message`` and ``msgflo-dump-message`` need); one outside the graph (on a
    shared broker, another network's) is mentioned once."""

    forward: frozenset[str]
    coordinator: Coordinator
    held: list[Event] | None = field(default_factory=list)
    outsiders: set[str] = field(default_factory=set)
    queues: dict[str, str] = field(default_factory=dict)

    def __call__(self, event: Event) -> None:
        if self.held is not None:
            self.held.append(event)
        else:
            self.show(event)

    def release(self) -> None:
        held, self.held = self.held or [], None
        for event in held:
            self.show(event)

    def show(self, event: Event) -> None:
        if event.kind in (EventKind.DATA, EventKind.PROCESS_READY, EventKind.GRAPH_CHANGED):
            return
        if event.kind is EventKind.OUTPUT:
            stream = str(event.data.get("stream", "stdout"))
            if stream in self.forward:
                label = event.data.get("label", event.role)
                click.echo(f"{label} | {event.message}", err=stream == "stderr")
            return
        if event.kind in (EventKind.WARNING, EventKind.ERROR):
            click.echo(f"{PROGRAM}: {event.kind.value}: {event.message}", err=True)
            return
        if event.kind in PARTICIPANT_EVENTS and event.role not in self.coordinator.nodes:
            if event.role not in self.outsiders:
                self.outsiders.add(event.role)
                click.echo(f"{PROGRAM}: {event.message} (not in the graph; not mentioned again)")
            return
        click.echo(f"{PROGRAM}: {event.message}")
        instance = self.coordinator.registry.instances.get(str(event.data.get("id", "")))
        if event.kind in PARTICIPANT_EVENTS and instance is not None:
            line = queue_line(event.role, instance.definition)
            if self.queues.get(event.role) != line:
                self.queues[event.role] = line
                click.echo(f"{PROGRAM}: {line}")
        sys.stdout.flush()


def show_access(server: ServerSettings, endpoint: Endpoint) -> None:
    """Say once how to reach a runtime whose secret was generated; warn at every start when
    anyone who can reach the port may run code on this host."""
    access, host = server.runtime.access, server.host
    if access.generated is not None:
        reachable = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
        address = Endpoint(reachable, endpoint.port).url
        click.echo(
            f"{PROGRAM}: --host {host} is reachable from other machines and no secret was "
            f"given: FBP clients need the generated secret {access.generated} (choose one with "
            "--secret, or allow anyone with --default-access full)"
        )
        click.echo(
            f"{PROGRAM}: open {live_url(server.ide, address, server.runtime.id, access.generated)}"
        )
    elif access.open_to(host):
        click.echo(
            f"{PROGRAM}: warning: the FBP runtime on {host}:{endpoint.port} gives anyone who can "
            "reach it full access, including running code on this host (--default-access full)",
            err=True,
        )


@contextlib.asynccontextmanager
async def broker_url(explicit: str | None, embedded_port: int = 0) -> AsyncIterator[str]:
    """The configured broker, or an embedded one for the duration of the block.

    The embedded broker's URL is printed with the line that points the other commands
    (msgflo-send-message, msgflo-dump-message) at it: they default to ``amqp://localhost``.
    """
    url = configured_broker(explicit)
    if url is not None:
        yield url
        return
    async with embedded_broker(port=embedded_port) as embedded:
        fixed = (
            "" if embedded_port else " (fix the port with --broker-port or MSGFLO_EMBEDDED_PORT)"
        )
        click.echo(
            f"{PROGRAM}: no broker configured; embedded MQTT broker on {embedded}{fixed}", err=True
        )
        click.echo(f"{PROGRAM}: for other commands: export MSGFLO_BROKER={embedded}", err=True)
        yield embedded


async def run(
    graph_file: Path | None,
    broker: str | None,
    library: Library,
    options: CoordinatorOptions,
    forward: frozenset[str],
    server: ServerSettings,
    embedded_port: int = 0,
    scalings: Sequence[RoleScaling] = (),
) -> int:
    graph = read_graph_model(graph_file) if graph_file else Graph()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with broker_url(broker, embedded_port) as url:
        options.broker_url = url
        coordinator = Coordinator(get_broker(url), library, options)
        printer = Printer(forward, coordinator)
        coordinator.add_listener(printer)
        runtime = Runtime(coordinator, library, server.runtime)
        scaler = Autoscaler(
            coordinator.broker, coordinator.supervisor, coordinator.events, scalings
        )
        try:
            await coordinator.start()
            runtime.add_graph(MAIN_GRAPH, graph)
            await runtime.start_network(MAIN_GRAPH)
            scaler.start()
            async with (
                serve(runtime, server.host, server.port, server.ide) as endpoint,
                alive_ping(server.ping, server.runtime.id),
            ):
                pending = coordinator.pending_roles()
                name = graph_file.name if graph_file else "(empty graph)"
                waiting = f", waiting for {', '.join(pending)}" if pending else ""
                count = len(coordinator.nodes)
                click.echo(
                    f"{PROGRAM} ready: {name} with {count} node{'' if count == 1 else 's'} on "
                    f"{Address.parse(url).redacted()}{waiting}; FBP runtime on {endpoint.url} "
                    f"(id {server.runtime.id})"
                )
                show_access(server, endpoint)
                if graph_file is None:
                    click.echo(
                        f"{PROGRAM}: no --graph given: running an empty network; build it from an "
                        f"FBP client (Flowhub, fbp-spec) on {endpoint.url}, or restart with --graph FILE"
                    )
                sys.stdout.flush()
                printer.release()
                await stop.wait()
                click.echo(f"{PROGRAM}: stopping", err=True)
        finally:
            await scaler.stop()
            await runtime.close()
            await coordinator.stop()
    return 0


@click.command(context_settings=CONTEXT)
@click.option(
    "--graph",
    "graph_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Graph to run (.fbp or .json).",
)
@click.option(
    "--broker",
    help="Broker URL. Default: MSGFLO_BROKER, then CLOUDAMQP_URL, else an embedded MQTT broker on 127.0.0.1.",
)
@click.option(
    "--broker-port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    envvar="MSGFLO_EMBEDDED_PORT",
    help="Port of the embedded broker (env MSGFLO_EMBEDDED_PORT). Default: any free port.",
)
@click.option(
    "--library",
    "library_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Library configuration (fbp-config.json, package.json or pyproject.toml). Default: the first of those in the current directory.",
)
@click.option(
    "--componentdir",
    multiple=True,
    help="Directory of component files (repeatable). Default: participants/ and components/ if they exist.",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="ROLE",
    help="Do not start this role; it is expected to announce itself (repeatable).",
)
@click.option(
    "--autoscale",
    "autoscale_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="guv autoscale config (*.guv.yaml): run as many copies of each role listed as its "
    "queue needs to meet the deadline (queue depth from RabbitMQ; see docs/deploying.md).",
)
@click.option(
    "--forward",
    default="stderr,stdout",
    show_default=True,
    help="Which child output streams to show, prefixed with the role.",
)
@click.option(
    "--wait-timeout",
    type=float,
    default=45.0,
    show_default=True,
    help="Seconds before warning about a participant that has not announced itself (it stays pending).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Remember discovered participants here, so a restarted coordinator knows the network at once.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many participants start at the same time.",
)
@click.option(
    "--max-restarts",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Consecutive quick failures before a participant is given up.",
)
@click.option(
    "--host",
    default="localhost",
    show_default=True,
    help="Interface the FBP runtime listens on, and the host of its advertised address.",
)
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=3569,
    show_default=True,
    help="FBP runtime port (HTTP page and WebSocket); 0 for any free port.",
)
@click.option(
    "--ide",
    default="https://app.flowhub.io",
    show_default=True,
    help="IDE for the live URL on the runtime's page.",
)
@click.option(
    "--auto-save/--no-auto-save",
    default=False,
    show_default=True,
    help="Write graph changes made over the FBP protocol back to --graph, in its format.",
)
@click.option(
    "--runtime-id",
    envvar="MSGFLO_RUNTIME_ID",
    help="FBP runtime id. Default: MSGFLO_RUNTIME_ID, else a new UUID.",
)
@click.option("--runtime-label", default="msgflo", show_default=True, help="FBP runtime label.")
@click.option(
    "--secret",
    envvar="MSGFLO_RUNTIME_SECRET",
    help="Secret that grants full access over the FBP protocol (never sent back to clients).",
)
@click.option(
    "--secrets-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML mapping of secret to access level (read or full), for several secrets.",
)
@click.option(
    "--default-access",
    type=click.Choice(["none", "read", "full"]),
    help="Access of clients without a secret. Default: full without secrets on loopback; none "
    "with a secret, or beyond loopback (a secret is generated and printed).",
)
@click.option(
    "--management-url",
    envvar="MSGFLO_MANAGEMENT_URL",
    help="RabbitMQ management API (http://user:pass@host:15672) for queue depths and rates in "
    "/metrics and /api/network. Default: passive queue declares (env MSGFLO_MANAGEMENT_URL).",
)
@click.option(
    "--ping-url",
    default=DEFAULT_URL,
    show_default=True,
    help="Runtime registry URL to ping; $RUNTIME_ID is replaced by the runtime id.",
)
@click.option(
    "--ping-method",
    type=click.Choice(["GET", "POST"]),
    default="POST",
    show_default=True,
    help="HTTP method of the alive ping.",
)
@click.option(
    "--ping-interval",
    type=float,
    default=0,
    show_default=True,
    envvar="MSGFLO_PING_INTERVAL",
    help="Seconds between alive pings, 0 for none. A failing ping is logged, never fatal.",
)
def main(
    graph_file: Path | None,
    broker: str | None,
    broker_port: int,
    library_file: Path | None,
    componentdir: tuple[str, ...],
    ignore: tuple[str, ...],
    autoscale_file: Path | None,
    forward: str,
    wait_timeout: float,
    state_dir: Path | None,
    concurrency: int,
    max_restarts: int,
    host: str,
    port: int,
    ide: str,
    auto_save: bool,
    runtime_id: str | None,
    runtime_label: str,
    secret: str | None,
    secrets_file: Path | None,
    default_access: str | None,
    management_url: str | None,
    ping_url: str,
    ping_method: str,
    ping_interval: float,
) -> None:
    """Run GRAPH as a distributed network of participants and keep it running until Ctrl-C."""
    setup_logging()
    with one_line_errors(PROGRAM):
        library = load_library(library_file, componentdir)
        options = CoordinatorOptions(
            ignore=tuple(ignore),
            wait_timeout=wait_timeout,
            state_dir=state_dir,
            concurrency=concurrency,
            max_failures=max_restarts,
        )
        if auto_save and graph_file is None:
            raise click.UsageError("--auto-save needs --graph (the file to save to)")
        scalings: list[RoleScaling] = []
        if autoscale_file is not None:
            if graph_file is None:
                raise click.UsageError("--autoscale needs --graph (the roles to scale)")
            scalings = autoscale_config(autoscale_file, graph_file, library, ignore)
            options.instances = starting_instances(scalings)
        server = ServerSettings(
            host,
            port,
            ide,
            RuntimeOptions(
                id=runtime_id or os.environ.get("MSGFLO_RUNTIME_ID") or str(uuid.uuid4()),
                label=runtime_label,
                access=Access.configure(secret, secrets_file, default_access, host),
                graph_file=graph_file,
                auto_save=auto_save,
                namespace=library.namespace,
                management_url=management_url,
            ),
            AlivePing(ping_url, ping_method, ping_interval),
        )
    streams = frozenset(s.strip() for s in forward.split(",") if s.strip())
    try:
        with one_line_errors(PROGRAM):
            code = asyncio.run(
                run(graph_file, broker, library, options, streams, server, broker_port, scalings)
            )
    except OSError as exc:
        hint = "; choose another --port, or --port 0 for any free one" if port else ""
        click.echo(
            f"{PROGRAM}: FBP runtime cannot listen on {host}:{port}: {exc.strerror or exc}{hint}",
            err=True,
        )
        sys.exit(1)
    sys.exit(code)
