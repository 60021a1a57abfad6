"""Coordinator events told to FBP clients: a participant's component (``component:component``)
and what happens in the running network (``network:data`` for an IIP sent, ``network:output``,
``network:processerror``, ``network:error``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from msgflo.coordinator import Coordinator, Event, EventKind
from msgflo.graph import PortRef
from msgflo.library import Library
from msgflo.runtime.components import component_payload
from msgflo.runtime.ports import edge_id, port_json
from msgflo.runtime.protocol.payloads import NetworkData

Broadcast = Callable[[str, str, Any], Awaitable[None]]


class EventReports:
    """Turns one coordinator event into the messages clients follow; what the event changes in
    the runtime's own state is the runtime's business."""

    def __init__(self, coordinator: Coordinator, library: Library, broadcast: Broadcast) -> None:
        self._coordinator = coordinator
        self._library = library
        self._broadcast = broadcast

    async def component(self, event: Event) -> None:
        """The component of a participant that announced itself, if the library knows it."""
        instance = self._coordinator.registry.instances.get(str(event.data.get("id", "")))
        if instance is None:
            return
        found = self._library.find(instance.component)
        if found is not None:
            await self._broadcast("component", "component", component_payload(found, self._library))

    async def network(self, graph_id: str, event: Event, in_graph: bool) -> None:
        """``in_graph``: the event's role is a node of the running graph ``graph_id``."""
        kind, role = event.kind, event.role
        if kind is EventKind.IIP_SENT and in_graph:
            tgt = PortRef(role, str(event.data.get("port", "")))
            sent: NetworkData = {
                "id": edge_id(None, tgt),
                "graph": graph_id,
                "tgt": port_json(tgt),
                "data": event.data.get("data"),
            }
            await self._broadcast("network", "data", sent)
        elif kind is EventKind.OUTPUT and in_graph:
            await self._broadcast(
                "network", "output", {"message": f"{role} | {event.message}", "type": "message"}
            )
        elif kind is EventKind.PROCESS_EXITED and in_graph:
            await self._broadcast(
                "network", "processerror", {"id": role, "error": event.message, "graph": graph_id}
            )
        elif kind is EventKind.ERROR:
            if in_graph:
                await self._broadcast(
                    "network",
                    "processerror",
                    {"id": role, "error": event.message, "graph": graph_id},
                )
            elif not role:
                await self._broadcast(
                    "network", "error", {"message": event.message, "graph": graph_id}
                )
