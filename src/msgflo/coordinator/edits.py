"""What the coordinator offers its users besides running a graph: the graph edits an FBP
client makes one at a time (nodes, edges, IIPs) and the ports it reaches into (sending to an
inport, tapping an outport, watching an edge).

They are methods of :class:`~msgflo.coordinator.coordinator.Coordinator` (it derives from
:class:`GraphEdits`), kept here so that the coordinator's own module is about turning changes
into wiring.  Each edit takes the coordinator's lock and ends with one re-plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from msgflo.coordinator.events import CoordinatorError, Event, EventKind
from msgflo.coordinator.taps import TapHandler
from msgflo.transport import QueueKind, TransportError
from msgflo.wiring import (
    VIRTUAL_COMPONENTS,
    Direction,
    Endpoint,
    InitialPacket,
    Link,
    Planned,
    WiringError,
    find_queue,
)

if TYPE_CHECKING:
    from msgflo.coordinator.initials import Initials
    from msgflo.coordinator.registry import Registry
    from msgflo.coordinator.supervisor import Instances
    from msgflo.coordinator.taps import Observers
    from msgflo.transport import Broker


@dataclass(slots=True)
class Role:
    """A node of the coordinator's graph: the role a participant takes."""

    name: str
    component: str
    metadata: dict[str, Any] = field(default_factory=dict)


class Core(Protocol):
    """What the edits need of the coordinator they are part of."""

    broker: Broker
    nodes: dict[str, Role]
    edges: list[Link]
    initials: Initials
    registry: Registry
    observers: Observers
    _lock: asyncio.Lock

    @property
    def children(self) -> dict[str, Instances]: ...
    def discovered(self, role: str) -> bool: ...
    def planned(self, edge: Link) -> Planned: ...
    def _emit(self, event: Event) -> None: ...
    def _start_node(self, node: Role) -> None: ...
    def _require_port(self, ref: Endpoint, direction: Direction) -> None: ...
    async def _rewire(self) -> None: ...


class GraphEdits:
    """Graph edits and port access; see the module docstring."""

    async def add_node(
        self: Core, name: str, component: str, metadata: Mapping[str, Any] | None = None
    ) -> None:
        async with self._lock:
            if name in self.nodes:
                raise CoordinatorError(f"node {name!r} already exists")
            node = self.nodes[name] = Role(name, component, dict(metadata or {}))
            self._start_node(node)
            await self._rewire()
        self._emit(Event(EventKind.GRAPH_CHANGED, name, f"node {name} added"))

    async def remove_node(self: Core, name: str) -> None:
        """Removes the node with its edges and IIPs, and stops its participant if we started it."""
        async with self._lock:
            if name not in self.nodes:
                raise CoordinatorError(f"no node {name!r} in the graph")
            del self.nodes[name]
            self.edges = [e for e in self.edges if name not in (e.src.process, e.tgt.process)]
            self.initials.packets = [i for i in self.initials.packets if i.tgt.process != name]
            child = self.children.pop(name, None)
            await self._rewire()
        if child is not None:
            await child.stop()
        self._emit(Event(EventKind.GRAPH_CHANGED, name, f"node {name} removed"))

    def _require_port(self: Core, ref: Endpoint, direction: Direction) -> None:
        if ref.process not in self.nodes:
            raise CoordinatorError(f"no node {ref.process!r} in the graph")
        definition = self.registry.definitions().get(ref.process)
        if definition is not None and self.nodes[ref.process].component not in VIRTUAL_COMPONENTS:
            try:
                find_queue(definition, direction, ref.port)
            except WiringError as exc:
                raise CoordinatorError(str(exc)) from exc

    async def add_edge(self: Core, src: Endpoint, tgt: Endpoint) -> Planned:
        """Connect two ports; returns the edge's wiring (pending until both are discovered)."""
        edge = Link(src, tgt)
        async with self._lock:
            self._require_port(src, Direction.OUT)
            self._require_port(tgt, Direction.IN)
            if edge in self.edges:
                raise CoordinatorError(f"edge {edge} already exists")
            self.edges.append(edge)
            await self._rewire()
            planned = self.planned(edge)
        self._emit(Event(EventKind.GRAPH_CHANGED, message=f"edge {edge} added"))
        return planned

    async def remove_edge(self: Core, src: Endpoint, tgt: Endpoint) -> None:
        edge = Link(src, tgt)
        async with self._lock:
            if edge not in self.edges:
                raise CoordinatorError(f"no edge {edge} in the graph")
            self.edges.remove(edge)
            await self.observers.unwatch(edge)
            await self._rewire()
        self._emit(Event(EventKind.GRAPH_CHANGED, message=f"edge {edge} removed"))

    async def add_initial(self: Core, tgt: Endpoint, data: Any) -> None:
        """Store the IIP and send it now if its target runs; new instances get it too."""
        async with self._lock:
            self._require_port(tgt, Direction.IN)
            initial = InitialPacket(data, tgt)
            self.initials.packets.append(initial)
            if self.discovered(tgt.process):
                await self.initials.send(initial)
        self._emit(Event(EventKind.GRAPH_CHANGED, message=f"IIP to {tgt} added"))

    async def remove_initial(self: Core, tgt: Endpoint) -> None:
        async with self._lock:
            before = len(self.initials.packets)
            self.initials.packets = [i for i in self.initials.packets if i.tgt != tgt]
            if len(self.initials.packets) == before:
                raise CoordinatorError(f"no IIP to {tgt} in the graph")
        self._emit(Event(EventKind.GRAPH_CHANGED, message=f"IIP to {tgt} removed"))

    async def send(self: Core, tgt: Endpoint, data: Any) -> None:
        """Send ``data`` to an inport of a discovered participant (what an FBP client sends
        into an exported inport)."""
        definition = self.registry.definitions().get(tgt.process)
        if definition is None:
            raise CoordinatorError(f"{tgt.process} has not announced itself yet")
        try:
            queue = find_queue(definition, Direction.IN, tgt.port)
            await self.broker.send_to(QueueKind.IN, queue, data)
        except (WiringError, TransportError) as exc:
            raise CoordinatorError(f"cannot send to {tgt}: {exc}") from exc

    # -- observing -------------------------------------------------------------------------

    async def tap(self: Core, ref: Endpoint, handler: TapHandler) -> None:
        """Call ``handler(ref, data)`` for everything the outport ``ref`` sends, from the moment
        its participant is known; taps are applied before IIPs go out, so none of their
        consequences is missed."""
        async with self._lock:
            self.observers.add_tap(ref, handler)
            await self.observers.apply_taps()

    async def untap(self: Core, ref: Endpoint, handler: TapHandler) -> None:
        async with self._lock:
            self.observers.remove_tap(ref, handler)
            await self.observers.apply_taps()

    async def watch_edge(self: Core, edge: Link) -> None:
        """Report the data passing ``edge`` as :attr:`EventKind.DATA` events (``network:data``)."""
        async with self._lock:
            await self.observers.watch(edge, self.planned(edge))

    async def unwatch_edge(self: Core, edge: Link) -> None:
        async with self._lock:
            await self.observers.unwatch(edge)
