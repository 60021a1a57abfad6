"""The runtime's state: graphs, which one runs, who is connected, and how changes reach them.

One :class:`Runtime` sits between FBP protocol clients and the coordinator. It keeps every graph
a client created (the protocol allows several; one is *main*, the one ``runtime:getruntime``
names), runs one of them through the coordinator, turns graph-model events into protocol
messages for every client allowed to follow them, and keeps the running network's live state
(participants announced, instance counts). Its collaborators each own one concern: the edge
taps (:mod:`~msgflo.runtime.taps`), the coordinator events told to clients
(:mod:`~msgflo.runtime.event_reports`), the main graph's file
(:mod:`~msgflo.runtime.persist`) and traces (:mod:`~msgflo.runtime.tracing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msgflo.coordinator import Coordinator, Event, EventKind
from msgflo.graph import ExportedPort, Graph, GraphEvent, undo
from msgflo.library import Library
from msgflo.runtime.access import Access, Level, may_receive
from msgflo.runtime.changes import graph_change
from msgflo.runtime.components import definition_of, port_definitions
from msgflo.runtime.event_reports import EventReports
from msgflo.runtime.persist import MainGraphFile
from msgflo.runtime.protocol.messages import ProtocolError, build, dumps
from msgflo.runtime.protocol.payloads import NetworkStatus
from msgflo.runtime.taps import EdgeTaps
from msgflo.runtime.tracing import Trace
from msgflo.wiring import VIRTUAL_COMPONENTS, Status

log = logging.getLogger(__name__)

MAIN_GRAPH = "default/main"
"""The id the original gave the graph msgflo runs; Flowhub asks for its source by this name."""

INSTANCES_KEY = "instances"
"""Node metadata key telling how many participants of the node's role are alive (never saved)."""

Send = Callable[[str], Awaitable[None]]


@dataclass(eq=False)
class Connection:
    """One protocol client. Its level follows the secret of its latest request."""

    send_text: Send
    level: Level = Level.NONE
    name: str = "client"

    @property
    def capabilities(self) -> frozenset[str]:
        return Access.capabilities(self.level)


@dataclass
class RuntimeOptions:
    id: str
    label: str = "msgflo"
    access: Access = field(default_factory=Access)
    graph_file: Path | None = None
    auto_save: bool = False
    ready_timeout: float = 10.0
    """How long ``runtime:packet`` waits for a starting network before sending anyway."""
    namespace: str | None = None
    management_url: str | None = None
    """RabbitMQ's management HTTP API, for queue depths and rates (docs/observing.md)."""


class Runtime:
    """See the module docstring. The graph models' events are queued as they happen and sent
    by :meth:`publish_changes`, so they reach clients in the order the model emitted them."""

    def __init__(self, coordinator: Coordinator, library: Library, options: RuntimeOptions) -> None:
        self.coordinator = coordinator
        self.library = library
        self.options = options
        self.graphs: dict[str, Graph] = {}
        self.main = MAIN_GRAPH
        self.running: str | None = None
        self.started_at = 0.0
        self.connections: set[Connection] = set()
        self.lock = asyncio.Lock()
        self.traces: dict[str, Trace] = {}
        self.edge_selection: dict[str, list[dict[str, Any]]] = {}
        self._changes: list[tuple[str, GraphEvent, bool]] = []
        self._live = False
        """Set while the runtime itself updates live state (instance counts) in a model."""
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self._announced: set[str] = set()
        """Roles whose participant announced itself since the network started."""
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._taps = EdgeTaps(coordinator, self._running_graph, self.broadcast)
        self._reports = EventReports(coordinator, library, self.broadcast)
        self.main_file = MainGraphFile(options.graph_file, options.auto_save, self._to_save)
        coordinator.add_listener(self._on_event)

    # -- graphs -----------------------------------------------------------------------

    def add_graph(self, graph_id: str, graph: Graph) -> None:
        old = self._unsubscribe.pop(graph_id, None)
        if old is not None:
            old()
        self.graphs[graph_id] = graph
        self._unsubscribe[graph_id] = graph.subscribe(
            lambda event: self._changes.append((graph_id, event, self._live))
        )

    def graph(self, payload: Mapping[str, Any]) -> tuple[str, Graph]:
        graph_id = payload.get("graph")
        if graph_id is None:
            raise ProtocolError("No graph specified")
        if not isinstance(graph_id, str):
            raise ProtocolError("'graph' must be a string")
        found = self.graphs.get(graph_id)
        if found is None:
            raise ProtocolError("Requested graph not found")
        return graph_id, found

    async def publish_changes(self, response_to: tuple[Connection, str | None] | None) -> None:
        """Send what the graph models reported since the last call, to every follower."""
        changes, self._changes = self._changes, []
        for graph_id, event, _live in changes:
            message = graph_change(graph_id, event)
            if message is not None:
                command, payload = message
                await self.broadcast("graph", command, {**payload, "graph": graph_id}, response_to)
        if any(graph_id == self.main and not live for graph_id, _, live in changes):
            self.main_file.edited()

    def discard_changes(self) -> None:
        self._changes.clear()

    def check_changes(self, graph_id: str) -> None:
        """Refuse an edit whose result could not be written as JSON: orjson reads 1024 levels
        of nesting but writes only 254, so a deeper value would be accepted here and then break
        every message and file that carries the graph (its reply, ``component:getsource``,
        saving). Both the messages the edit sends and the whole graph are tried."""
        try:
            for changed, event, _live in self._changes:
                message = graph_change(changed, event)
                if message is not None:
                    command, payload = message
                    dumps(build("graph", command, {**payload, "graph": changed}))
            dumps(self.graphs[graph_id].to_json())
        except TypeError as exc:  # orjson.JSONEncodeError
            raise ProtocolError(f"a value cannot be written back as JSON ({exc})") from exc

    # -- sending ----------------------------------------------------------------------

    async def send(self, connection: Connection, message: dict[str, Any]) -> None:
        try:
            await connection.send_text(dumps(message))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("dropping a message to a closed connection: %s", exc)

    async def broadcast(
        self,
        protocol: str,
        command: str,
        payload: Any,
        response_to: tuple[Connection, str | None] | None = None,
    ) -> None:
        """To every client allowed to follow ``protocol:command``; the requester's copy says
        which request it answers."""
        graph = payload.get("graph") if isinstance(payload, Mapping) else None
        if protocol == "network" and isinstance(graph, str) and graph in self.traces:
            self.traces[graph].record(graph, protocol, command, payload)
        plain = build(protocol, command, payload)
        for connection in list(self.connections):
            if not may_receive(connection.capabilities, protocol, command):
                continue
            if response_to is not None and connection is response_to[0] and response_to[1]:
                await self.send(connection, build(protocol, command, payload, response_to[1]))
            else:
                await self.send(connection, plain)

    # -- the running network ---------------------------------------------------------------

    def is_running(self, graph_id: str) -> bool:
        return self.running == graph_id

    def _running_graph(self) -> tuple[str, Graph] | None:
        return None if self.running is None else (self.running, self.graphs[self.running])

    def busy(self) -> bool:
        """The running network is still starting: a participant it started has not announced
        itself since, or an edge still waits for one. Once that is over, msgflo cannot see
        anything in flight (participants are always on), so the network counts as idle."""
        if self.running is None:
            return False
        graph = self.graphs[self.running]
        for name, node in graph.nodes.items():
            if node.component in VIRTUAL_COMPONENTS or name in self._announced:
                continue
            if name in self.coordinator.children or not self.coordinator.registry.count(name):
                return True
        return any(p.status is Status.PENDING for p in self.coordinator.wiring.values())

    async def wait_ready(self, timeout: float) -> bool:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: not self.busy())

        try:
            await asyncio.wait_for(until(), timeout)
            await asyncio.wait_for(self.coordinator.applied_now(), timeout)
        except TimeoutError:
            return False
        return True

    def status(self, graph_id: str) -> NetworkStatus:
        started = self.is_running(graph_id)
        return {"graph": graph_id, "started": started, "running": started and self.busy()}

    def uptime(self, graph_id: str) -> float:
        return round(time.monotonic() - self.started_at, 3) if self.is_running(graph_id) else 0

    async def start_network(self, graph_id: str) -> None:
        """Run ``graph_id`` (replacing what ran): participants start, edges are wired as they
        announce themselves, IIPs go out once their downstream is wired."""
        graph = self.graphs[graph_id]
        self._announced.clear()
        self.running = graph_id
        self.started_at = time.monotonic()
        await self._taps.sync()
        await self.coordinator.load_graph(graph.to_json())
        for name in graph.nodes:
            self._set_instances(name)
        await self._notify()

    async def stop_network(self) -> None:
        graph_id, self.running = self.running, None
        await self._taps.sync()
        await self.coordinator.load_graph({"processes": {}, "connections": []})
        if graph_id is not None:
            graph = self.graphs[graph_id]
            self._live = True
            try:
                for node in graph.nodes.values():
                    if INSTANCES_KEY in node.metadata:
                        graph.set_node_metadata(node.name, {INSTANCES_KEY: None})
            finally:
                self._live = False
        await self._notify()

    async def after_edit(self, graph_id: str) -> None:
        if self.is_running(graph_id):
            await self._taps.sync()
            if graph_id == self.main:
                await self.send_ports(None)

    async def send_ports(self, connection: Connection | None) -> None:
        graph = self.graphs.get(self.main)
        if graph is None:
            return
        payload = {
            "graph": self.main,
            "inPorts": [self._exported_port(e, "inports") for e in graph.inports.values()],
            "outPorts": [self._exported_port(e, "outports") for e in graph.outports.values()],
        }
        if connection is None:
            await self.broadcast("runtime", "ports", payload)
        elif may_receive(connection.capabilities, "runtime", "ports"):
            await self.send(connection, build("runtime", "ports", payload))

    def _exported_port(self, exported: ExportedPort, kind: str) -> dict[str, Any]:
        """The inner port's definition under the public name: from the live participant, else
        from the node's component; ``any`` where neither is known."""
        node = self.graphs[self.main].nodes.get(exported.node)
        definition = self.coordinator.registry.definitions().get(exported.node)
        if definition is None and node is not None and node.component:
            found = self.library.find(node.component)
            definition = definition_of(found, self.library) if found is not None else None
        ports = port_definitions((definition or {}).get(kind))
        match = [p for p in ports if p["id"].lower() == exported.port.lower()]
        return {**(match[0] if match else {"type": "any"}), "id": exported.public}

    # -- coordinator events ------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        task = asyncio.get_running_loop().create_task(self._handle_event(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_event(self, event: Event) -> None:
        graph_id = self.running
        role = event.role
        in_graph = graph_id is not None and role in self.graphs[graph_id].nodes
        kind = event.kind
        if kind in (EventKind.PARTICIPANT_ADDED, EventKind.PARTICIPANT_BACK):
            self._announced.add(role)
        if (
            kind
            in (
                EventKind.PARTICIPANT_ADDED,
                EventKind.PARTICIPANT_BACK,
                EventKind.PARTICIPANT_GONE,
            )
            and in_graph
        ):
            self._set_instances(role)
            await self.publish_changes(None)
        if kind in (EventKind.PARTICIPANT_ADDED, EventKind.PARTICIPANT_UPDATED):
            await self._reports.component(event)
        if graph_id is not None:
            await self._reports.network(graph_id, event, in_graph)
        await self._notify()

    def _set_instances(self, role: str) -> None:
        if self.running is None:
            return
        graph = self.graphs[self.running]
        node = graph.nodes.get(role)
        if node is None or node.component in VIRTUAL_COMPONENTS:
            return
        count = self.coordinator.registry.count(role)
        if node.metadata.get(INSTANCES_KEY) != count:
            self._live = True
            try:
                graph.set_node_metadata(role, {INSTANCES_KEY: count})
            finally:
                self._live = False

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- the main graph's file and closing --------------------------------------------------

    def _to_save(self) -> Graph:
        """A copy of the main graph without its live state."""
        graph = Graph.from_json(self.graphs[self.main].to_json())
        for node in graph.nodes.values():
            node.metadata.pop(INSTANCES_KEY, None)
        return graph

    async def close(self) -> None:
        self.coordinator.remove_listener(self._on_event)
        for task in self._tasks:
            task.cancel()
        saving = self.main_file.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if saving is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await saving


@contextlib.contextmanager
def undo_on_error(runtime: Runtime, graph: Graph) -> Iterator[None]:
    """Whatever refuses an edit (the model, a value that cannot be sent, the coordinator),
    the graph is put back as it was and its events are dropped, so clients never hear of it."""
    before = undo.snapshot(graph)
    try:
        yield
    except BaseException:
        undo.restore(graph, before)
        runtime.discard_changes()
        raise
