"""The runtime's state: graphs, which one runs, who is connected, and how changes reach them.

One :class:`Runtime` sits between FBP protocol clients and the coordinator. It keeps every graph
a client created (the protocol allows several; one is *main*, the one ``runtime:getruntime``
names), runs one of them through the coordinator, turns graph-model events into protocol
messages for every client allowed to follow them, and turns coordinator events (IIPs sent, data
on edges and exported outports, participants coming and going) into ``network:*``,
``runtime:packet`` and ``graph:changenode`` messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msgflo.coordinator import Coordinator, Event, EventKind
from msgflo.graph import Graph, GraphError, GraphEvent, save_graph
from msgflo.graph.model import Edge, ExportedPort, Group, Initial, Node, PortRef
from msgflo.library import Library
from msgflo.runtime.access import Access, Level, may_receive
from msgflo.runtime.components import component_payload, definition_of, port_definitions
from msgflo.runtime.protocol.messages import ProtocolError, build, dumps
from msgflo.runtime.protocol.payloads import (
    EdgePayload,
    InitialPayload,
    NetworkData,
    NetworkStatus,
    PortRefPayload,
    RuntimePacket,
)
from msgflo.wiring import VIRTUAL_COMPONENTS, Status
from msgflo.wiring import Endpoint as WirePort

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


TRACE_BUFFERSIZE = 10_000
"""Events a trace keeps when ``trace:start`` names no ``buffersize``."""


@dataclass
class Trace:
    """Flowtrace recording of one graph's network events: the newest ``buffersize`` of them,
    so a trace left running on a busy network holds a bounded amount of memory."""

    enabled: bool = False
    buffersize: int | None = None
    started: str = ""
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRACE_BUFFERSIZE))

    def start(self, buffersize: int | None) -> None:
        self.enabled, self.buffersize = True, buffersize
        size = buffersize if buffersize and buffersize > 0 else TRACE_BUFFERSIZE
        self.events = deque(self.events, maxlen=size)


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def port_json(ref: PortRef) -> PortRefPayload:
    out: PortRefPayload = {"node": ref.node, "port": ref.port}
    if ref.index is not None:
        out["index"] = ref.index
    return out


def edge_id(src: PortRef | None, tgt: PortRef) -> str:
    """The readable label FBP clients show for an edge (``DATA`` stands for an IIP)."""
    left = "DATA" if src is None else f"{src.node}() {src.port.upper()}"
    return f"{left} -> {tgt.port.upper()} {tgt.node}()"


def wire(ref: PortRef) -> WirePort:
    return WirePort(ref.node, ref.port, ref.index)


def graph_change(graph_id: str, event: GraphEvent) -> tuple[str, dict[str, Any]] | None:
    """The ``graph:*`` message for a model event; ``None`` for changes the protocol has no
    message for (exported-port metadata, graph properties). Payloads may hold more than a
    command allows: :func:`build` keeps what its schema names."""
    subject = event.subject
    kind = event.kind
    if isinstance(subject, Node):
        if kind == "add_node":
            return "addnode", {
                "id": subject.name,
                "component": subject.component or "",
                "metadata": subject.metadata,
            }
        if kind == "remove_node":
            return "removenode", {"id": subject.name}
        if kind == "rename_node":
            return "renamenode", {"from": event.old, "to": subject.name}
        return "changenode", {"id": subject.name, "metadata": subject.metadata}
    if isinstance(subject, Edge):
        edge: EdgePayload = {
            "src": port_json(subject.src),
            "tgt": port_json(subject.tgt),
            "metadata": subject.metadata,
        }
        return kind.replace("_", ""), dict(edge)
    if isinstance(subject, Initial):
        initial: InitialPayload = {
            "src": {"data": subject.data},
            "tgt": port_json(subject.tgt),
            "metadata": subject.metadata,
        }
        return kind.replace("_", ""), dict(initial)
    if isinstance(subject, ExportedPort):
        if kind.startswith("change_"):
            return None
        if kind.startswith("rename_"):
            return kind.replace("_", ""), {"from": event.old, "to": subject.public}
        payload: dict[str, Any] = {
            "public": subject.public,
            "node": subject.node,
            "port": subject.port,
        }
        if subject.metadata:
            payload["metadata"] = subject.metadata
        return kind.replace("_", ""), payload  # build() keeps what each command allows
    if isinstance(subject, Group):
        if kind == "rename_group":
            return "renamegroup", {"from": event.old, "to": subject.name}
        if kind == "add_group":
            return "addgroup", {
                "name": subject.name,
                "nodes": subject.nodes,
                "metadata": subject.metadata,
            }
        if kind == "remove_group":
            return "removegroup", {"name": subject.name}
        return "changegroup", {"name": subject.name, "metadata": subject.metadata}
    return None


class Runtime:
    """See the module docstring. All graph edits go through :meth:`edit` so their events reach
    clients in the order the model emitted them."""

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
        self._tapped: set[WirePort] = set()
        self._announced: set[str] = set()
        """Roles whose participant announced itself since the network started."""
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._save_task: asyncio.Task[None] | None = None
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
        if changes:
            self._schedule_save(changes)

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
        if protocol == "network" and isinstance(graph, str):
            self._record(graph, protocol, command, payload)
        plain = build(protocol, command, payload)
        for connection in list(self.connections):
            if not may_receive(connection.capabilities, protocol, command):
                continue
            if response_to is not None and connection is response_to[0] and response_to[1]:
                await self.send(connection, build(protocol, command, payload, response_to[1]))
            else:
                await self.send(connection, plain)

    def _record(self, graph: str, protocol: str, command: str, payload: Any) -> None:
        trace = self.traces.get(graph)
        if trace is None or not trace.enabled:
            return
        trace.events.append(
            {
                "protocol": protocol,
                "command": command,
                "payload": build(protocol, command, payload)["payload"],
                "graph": graph,
                "time": now_iso(),
            }
        )

    # -- the running network ---------------------------------------------------------------

    def is_running(self, graph_id: str) -> bool:
        return self.running == graph_id

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
        await self._sync_taps()
        await self.coordinator.load_graph(graph.to_json())
        for name in graph.nodes:
            self._set_instances(name)
        await self._notify()

    async def stop_network(self) -> None:
        graph_id, self.running = self.running, None
        await self._sync_taps()
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

    def _wanted_taps(self) -> set[WirePort]:
        if self.running is None:
            return set()
        graph = self.graphs[self.running]
        wanted = {WirePort(e.src.node, e.src.port) for e in graph.edges}
        wanted |= {WirePort(e.node, e.port) for e in graph.outports.values()}
        return wanted

    async def _sync_taps(self) -> None:
        """Observe every outport that feeds an edge or an exported outport of the running
        graph, so ``network:data`` needs no prior ``network:edges`` (fbp-test relies on it)."""
        wanted = self._wanted_taps()
        for ref in self._tapped - wanted:
            await self.coordinator.untap(ref, self._on_port_data)
        for ref in wanted - self._tapped:
            await self.coordinator.tap(ref, self._on_port_data)
        self._tapped = wanted

    async def after_edit(self, graph_id: str) -> None:
        if self.is_running(graph_id):
            await self._sync_taps()
            if graph_id == self.main:
                await self.send_ports(None)

    async def _on_port_data(self, ref: WirePort, data: Any) -> None:
        if self.running is None:
            return
        graph_id, graph = self.running, self.graphs[self.running]
        for edge in graph.edges:
            if (edge.src.node, edge.src.port) == (ref.process, ref.port):
                carried: NetworkData = {
                    "id": edge_id(edge.src, edge.tgt),
                    "graph": graph_id,
                    "src": port_json(edge.src),
                    "tgt": port_json(edge.tgt),
                    "data": data,
                }
                await self.broadcast("network", "data", carried)
        for public, exported in graph.outports.items():
            if (exported.node, exported.port) == (ref.process, ref.port):
                packet: RuntimePacket = {
                    "port": public,
                    "event": "data",
                    "graph": graph_id,
                    "payload": data,
                }
                await self.broadcast("runtime", "packet", packet)

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
            await self._announce_component(event)
        if graph_id is not None:
            await self._network_event(graph_id, event, in_graph)
        await self._notify()

    async def _network_event(self, graph_id: str, event: Event, in_graph: bool) -> None:
        kind, role = event.kind, event.role
        if kind is EventKind.IIP_SENT and in_graph:
            tgt = PortRef(role, str(event.data.get("port", "")))
            sent: NetworkData = {
                "id": edge_id(None, tgt),
                "graph": graph_id,
                "tgt": port_json(tgt),
                "data": event.data.get("data"),
            }
            await self.broadcast("network", "data", sent)
        elif kind is EventKind.OUTPUT and in_graph:
            await self.broadcast(
                "network", "output", {"message": f"{role} | {event.message}", "type": "message"}
            )
        elif kind is EventKind.PROCESS_EXITED and in_graph:
            await self.broadcast(
                "network", "processerror", {"id": role, "error": event.message, "graph": graph_id}
            )
        elif kind is EventKind.ERROR:
            if in_graph:
                await self.broadcast(
                    "network",
                    "processerror",
                    {"id": role, "error": event.message, "graph": graph_id},
                )
            elif not role:
                await self.broadcast(
                    "network", "error", {"message": event.message, "graph": graph_id}
                )

    async def _announce_component(self, event: Event) -> None:
        instance = self.coordinator.registry.instances.get(str(event.data.get("id", "")))
        if instance is None:
            return
        found = self.library.find(instance.component)
        if found is not None:
            await self.broadcast("component", "component", component_payload(found, self.library))

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

    # -- auto-save ---------------------------------------------------------------------------

    def _schedule_save(self, changes: list[tuple[str, GraphEvent, bool]]) -> None:
        """Instance counts are live state, not an edit: they never trigger a save."""
        if not self.options.auto_save or self.options.graph_file is None:
            return
        if not any(graph_id == self.main and not live for graph_id, _, live in changes):
            return
        if self._save_task is None or self._save_task.done():
            self._save_task = asyncio.get_running_loop().create_task(self._save_soon())

    async def _save_soon(self) -> None:
        """Changes arrive in bursts (a node removal is several events): save once after."""
        await asyncio.sleep(0)
        with contextlib.suppress(GraphError, OSError):
            self.save()

    def save(self) -> Path:
        """Write the main graph back to its file, in the file's own format, atomically (a
        crash mid-write leaves the previous file)."""
        path = self.options.graph_file
        if path is None:
            raise ProtocolError("no graph file to save to (start msgflo with --graph)")
        graph = Graph.from_json(self.graphs[self.main].to_json())
        for node in graph.nodes.values():
            node.metadata.pop(INSTANCES_KEY, None)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
        os.close(fd)
        try:
            save_graph(graph, tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    async def close(self) -> None:
        self.coordinator.remove_listener(self._on_event)
        for task in [*self._tasks, *([self._save_task] if self._save_task else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._save_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._save_task


@contextlib.contextmanager
def undo_on_error(runtime: Runtime, graph: Graph) -> Iterator[None]:
    """Whatever refuses an edit (the model, a value that cannot be sent, the coordinator),
    the graph is put back as it was and its events are dropped, so clients never hear of it."""
    before = graph.snapshot()
    try:
        yield
    except BaseException:
        graph.restore(before)
        runtime.discard_changes()
        raise


@dataclass
class Request:
    """One client request, with typed access to its payload: a missing or mistyped field is a
    :class:`ProtocolError` naming the field."""

    runtime: Runtime
    connection: Connection
    protocol: str
    command: str
    payload: dict[str, Any]
    request_id: str | None = None

    @property
    def origin(self) -> tuple[Connection, str | None]:
        return self.connection, self.request_id

    async def reply(self, command: str, payload: Any, protocol: str | None = None) -> None:
        await self.runtime.send(
            self.connection, build(protocol or self.protocol, command, payload, self.request_id)
        )

    async def broadcast(self, command: str, payload: Any, protocol: str | None = None) -> None:
        await self.runtime.broadcast(protocol or self.protocol, command, payload, self.origin)

    def _field(self, key: str, kind: type | tuple[type, ...], what: str, required: bool) -> Any:
        value = self.payload.get(key)
        if value is None:
            if required:
                raise ProtocolError(f"{self.protocol}:{self.command}: '{key}' is missing")
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
            raise ProtocolError(f"{self.protocol}:{self.command}: '{key}' must be {what}")
        return value

    def text(self, key: str) -> str:
        value: str = self._field(key, str, "a string", True)
        if not value:
            raise ProtocolError(f"{self.protocol}:{self.command}: '{key}' must not be empty")
        return value

    def optional_text(self, key: str) -> str | None:
        value: str | None = self._field(key, str, "a string", False)
        return value

    def flag(self, key: str) -> bool | None:
        value: bool | None = self._field(key, bool, "true or false", False)
        return value

    def number(self, key: str) -> int | None:
        value: int | None = self._field(key, int, "an integer", False)
        return value

    def mapping(self, key: str, *, required: bool = False) -> dict[str, Any]:
        value = self._field(key, dict, "an object", required)
        return dict(value) if value is not None else {}

    def strings(self, key: str) -> list[str]:
        value = self._field(key, list, "a list of strings", True)
        if not all(isinstance(item, str) for item in value):
            raise ProtocolError(
                f"{self.protocol}:{self.command}: '{key}' must be a list of strings"
            )
        return list(value)

    def port(self, key: str) -> PortRef:
        raw = self._field(key, dict, "an object with 'node' and 'port'", True)
        node, port, index = raw.get("node"), raw.get("port"), raw.get("index")
        if not isinstance(node, str) or not isinstance(port, str) or not node or not port:
            raise ProtocolError(
                f"{self.protocol}:{self.command}: '{key}' needs 'node' and 'port' strings"
            )
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            raise ProtocolError(f"{self.protocol}:{self.command}: '{key}.index' must be an integer")
        return PortRef(node, port, index)


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
