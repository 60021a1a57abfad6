"""``network``: start, stop and watch the running network."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from msgflo.graph import GraphError
from msgflo.runtime.protocol.messages import ProtocolError
from msgflo.runtime.protocol.payloads import NetworkStatus
from msgflo.runtime.request import Request
from msgflo.runtime.tracing import now_iso


async def start(req: Request) -> None:
    rt = req.runtime
    graph_id, _ = rt.graph(req.payload)
    await rt.start_network(graph_id)
    started: NetworkStatus = {
        "graph": graph_id,
        "started": True,
        "running": rt.status(graph_id)["running"],
        "time": now_iso(),
    }
    await req.broadcast("started", started)


async def stop(req: Request) -> None:
    rt = req.runtime
    graph_id, _ = rt.graph(req.payload)
    uptime = rt.uptime(graph_id)
    if rt.is_running(graph_id):
        await rt.stop_network()
        await rt.publish_changes(req.origin)
    stopped: NetworkStatus = {
        "graph": graph_id,
        "started": False,
        "running": False,
        "time": now_iso(),
        "uptime": uptime,
    }
    await req.broadcast("stopped", stopped)


async def getstatus(req: Request) -> None:
    graph_id, _ = req.runtime.graph(req.payload)
    await req.reply("status", req.runtime.status(graph_id))


async def debug(req: Request) -> None:
    """Edge data is always reported, so debug mode changes nothing; the status says so."""
    graph_id, _ = req.runtime.graph(req.payload)
    req.flag("enable")
    await req.reply("status", req.runtime.status(graph_id))


async def edges(req: Request) -> None:
    """Remember the client's selection (data is reported for every edge anyway) and confirm
    it to every client, so several editors show the same selection."""
    rt = req.runtime
    graph_id, graph = rt.graph(req.payload)
    raw = req.payload.get("edges")
    if not isinstance(raw, list):
        raise ProtocolError("network:edges: 'edges' must be a list")
    selection: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ProtocolError(f"network:edges: edge #{index + 1} must be an object")
        sub = type(req)(rt, req.connection, "network", "edges", item)
        src, tgt = sub.port("src"), sub.port("tgt")
        if graph.find_edge(src, tgt) is None:
            raise ProtocolError(
                f"network:edges: no edge {src.node}.{src.port} -> {tgt.node}.{tgt.port}"
            )
        selection.append(
            {
                "src": {"node": src.node, "port": src.port},
                "tgt": {"node": tgt.node, "port": tgt.port},
            }
        )
    rt.edge_selection[graph_id] = selection
    await req.broadcast("edges", {"graph": graph_id, "edges": selection})


async def persist(req: Request) -> None:
    """Save the main graph to the file it was loaded from."""
    try:
        req.runtime.main_file.save()
    except (GraphError, OSError) as exc:
        raise ProtocolError(f"network:persist: {exc}") from exc
    await req.reply("persist", {})


COMMANDS: dict[str, Callable[[Request], Awaitable[None]]] = {
    "start": start,
    "stop": stop,
    "getstatus": getstatus,
    "debug": debug,
    "edges": edges,
    "persist": persist,
}
UNLOCKED: frozenset[str] = frozenset()
