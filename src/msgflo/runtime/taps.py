"""Watching the running graph's edges: what an outport sends reaches FBP clients as
``network:data`` (per edge it feeds) and ``runtime:packet`` (per exported outport)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from msgflo.coordinator import Coordinator
from msgflo.graph import Graph
from msgflo.runtime.ports import edge_id, port_json
from msgflo.runtime.protocol.payloads import NetworkData, RuntimePacket
from msgflo.wiring import Endpoint as WirePort

Running = Callable[[], tuple[str, Graph] | None]
"""The running graph with its id, or ``None`` while nothing runs."""
Broadcast = Callable[[str, str, Any], Awaitable[None]]


class EdgeTaps:
    """The coordinator taps this keeps open, one per outport of the running graph that feeds
    an edge or an exported outport, so ``network:data`` needs no prior ``network:edges``
    (fbp-test relies on it)."""

    def __init__(self, coordinator: Coordinator, running: Running, broadcast: Broadcast) -> None:
        self._coordinator = coordinator
        self._running = running
        self._broadcast = broadcast
        self._tapped: set[WirePort] = set()

    def _wanted(self) -> set[WirePort]:
        running = self._running()
        if running is None:
            return set()
        graph = running[1]
        wanted = {WirePort(e.src.node, e.src.port) for e in graph.edges}
        wanted |= {WirePort(e.node, e.port) for e in graph.outports.values()}
        return wanted

    async def sync(self) -> None:
        """Follow the running graph: untap what it no longer has, tap what it gained."""
        wanted = self._wanted()
        for ref in self._tapped - wanted:
            await self._coordinator.untap(ref, self._on_port_data)
        for ref in wanted - self._tapped:
            await self._coordinator.tap(ref, self._on_port_data)
        self._tapped = wanted

    async def _on_port_data(self, ref: WirePort, data: Any) -> None:
        running = self._running()
        if running is None:
            return
        graph_id, graph = running
        for edge in graph.edges:
            if (edge.src.node, edge.src.port) == (ref.process, ref.port):
                carried: NetworkData = {
                    "id": edge_id(edge.src, edge.tgt),
                    "graph": graph_id,
                    "src": port_json(edge.src),
                    "tgt": port_json(edge.tgt),
                    "data": data,
                }
                await self._broadcast("network", "data", carried)
        for public, exported in graph.outports.items():
            if (exported.node, exported.port) == (ref.process, ref.port):
                packet: RuntimePacket = {
                    "port": public,
                    "event": "data",
                    "graph": graph_id,
                    "payload": data,
                }
                await self._broadcast("runtime", "packet", packet)
