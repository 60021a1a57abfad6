"""``runtime``: what this runtime is, its exported ports, packets in and out of them."""

from __future__ import annotations

from msgflo.coordinator import CoordinatorError
from msgflo.graph import PortRef
from msgflo.runtime.access import ALL_CAPABILITIES
from msgflo.runtime.ports import wire
from msgflo.runtime.protocol.messages import PROTOCOL_VERSION, ProtocolError
from msgflo.runtime.protocol.payloads import RuntimePayload
from msgflo.runtime.request import Request

RUNTIME_TYPE = "msgflo"
PACKET_EVENTS = frozenset({"connect", "begingroup", "data", "endgroup", "disconnect"})


async def getruntime(req: Request) -> None:
    rt = req.runtime
    payload: RuntimePayload = {
        "type": RUNTIME_TYPE,
        "version": PROTOCOL_VERSION,
        "capabilities": sorted(req.connection.capabilities),
        "allCapabilities": list(ALL_CAPABILITIES),
        "id": rt.options.id,
        "label": rt.options.label,
        "graph": rt.main,
        "namespace": rt.options.namespace,
    }
    await req.reply("runtime", payload)
    if rt.is_running(rt.main):
        await rt.send_ports(req.connection)


async def packet(req: Request) -> None:
    """Into an exported inport. Only ``data`` events carry anything over a message queue;
    the others (brackets, connect/disconnect) are acknowledged and dropped."""
    rt = req.runtime
    graph_id, graph = rt.graph(req.payload)
    port = req.text("port")
    event = req.text("event")
    if event not in PACKET_EVENTS:
        raise ProtocolError(f"runtime:packet: unknown event {event!r}")
    exported = graph.inports.get(port)
    if exported is None:
        raise ProtocolError(f"runtime:packet: graph {graph_id} has no exported inport {port!r}")
    if event == "data":
        if not rt.is_running(graph_id):
            raise ProtocolError(f"runtime:packet: graph {graph_id} is not running")
        await rt.wait_ready(rt.options.ready_timeout)
        try:
            await rt.coordinator.send(
                wire(PortRef(exported.node, exported.port)), req.payload.get("payload")
            )
        except CoordinatorError as exc:
            raise ProtocolError(f"runtime:packet: {exc}") from exc
    await req.reply(
        "packetsent",
        {"port": port, "event": event, "graph": graph_id, "payload": req.payload.get("payload")},
    )


COMMANDS = {"getruntime": getruntime, "packet": packet}
UNLOCKED = frozenset({"packet"})
"""A packet may wait for a starting network; it edits nothing, so others need not wait."""
