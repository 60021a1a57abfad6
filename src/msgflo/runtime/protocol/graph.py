"""``graph``: edit graphs; edits of the running graph reach the broker through the coordinator.

Every edit is made on the graph model first (which validates it and reports each change, in
order, including the cascade of a node removal), checked (the result must be writable as JSON),
then, for the running graph, made through the matching coordinator operation (start or stop a
participant, bind or unbind an edge, send an IIP). If any step refuses, the graph is restored
from a snapshot taken before the edit and no client hears of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from msgflo import deadletter
from msgflo.graph import Graph, PortRef
from msgflo.runtime.components import definition_of
from msgflo.runtime.core import undo_on_error
from msgflo.runtime.ports import wire
from msgflo.runtime.protocol.messages import ProtocolError
from msgflo.runtime.request import Request
from msgflo.wiring import VIRTUAL_COMPONENTS

Live = Callable[[], Awaitable[Any]] | None
PROPERTY_KEYS = ("name", "library", "icon", "description")


async def apply(req: Request, graph_id: str, change: Callable[[], Any], live: Live = None) -> None:
    """Validate, then apply: the model edit is made and checked (it must be writable as
    JSON) before the network hears of it; if anything refuses, the graph is restored."""
    rt = req.runtime
    with undo_on_error(rt, rt.graphs[graph_id]):
        change()
        rt.check_changes(graph_id)
        if live is not None and rt.is_running(graph_id):
            await live()
    await rt.publish_changes(req.origin)
    await rt.after_edit(graph_id)


def check_port(
    req: Request, graph: Graph, ref: PortRef, kind: Literal["inports", "outports"]
) -> None:
    """Refuse a port the node's component does not have, where its ports are known."""
    node = graph.node(ref.node)
    if node.component is None or node.component in VIRTUAL_COMPONENTS:
        return
    found = req.runtime.library.find(node.component)
    if found is None:
        return
    definition = definition_of(found, req.runtime.library)
    ports = definition.get(kind)
    if not isinstance(ports, list) or not ports:
        return
    names = [str(p.get("id")) for p in ports if isinstance(p, dict)]
    if kind == "outports":
        names += [p["id"] for p in deadletter.ports_of(definition)]
    if ref.port.lower() not in (n.lower() for n in names):
        raise ProtocolError(
            f"node {ref.node} ({node.component}) has no {kind[:-1]} {ref.port!r} "
            f"(has: {', '.join(names)})"
        )


async def clear(req: Request) -> None:
    rt = req.runtime
    graph_id = req.text("id")
    properties = {key: req.optional_text(key) for key in PROPERTY_KEYS}
    main = req.flag("main")
    rt.add_graph(graph_id, Graph(properties={k: v for k, v in properties.items() if v is not None}))
    if main:
        rt.main = graph_id
    if rt.is_running(graph_id):
        await rt.start_network(graph_id)
    await req.broadcast("clear", {"id": graph_id, **properties, "main": rt.main == graph_id})
    await rt.after_edit(graph_id)


async def addnode(req: Request) -> None:
    rt = req.runtime
    graph_id, graph = rt.graph(req.payload)
    name, component = req.text("id"), req.text("component")
    metadata = req.mapping("metadata")
    if component not in VIRTUAL_COMPONENTS and rt.library.find(component) is None:
        raise ProtocolError(f"graph:addnode: unknown component {component!r}")
    await apply(
        req,
        graph_id,
        lambda: graph.add_node(name, component, metadata),
        lambda: rt.coordinator.add_node(name, component, metadata),
    )


async def removenode(req: Request) -> None:
    rt = req.runtime
    graph_id, graph = rt.graph(req.payload)
    name = req.text("id")
    await apply(
        req, graph_id, lambda: graph.remove_node(name), lambda: rt.coordinator.remove_node(name)
    )


async def renamenode(req: Request) -> None:
    """A node's name is its participant's role, so a running node is restarted under the new
    role, with its edges and IIPs."""
    rt = req.runtime
    graph_id, graph = rt.graph(req.payload)
    old, new = req.text("from"), req.text("to")
    if old == new:  # nothing changes, so no change event would answer the request
        graph.node(old)
        await req.reply("renamenode", {"from": old, "to": new, "graph": graph_id})
        return

    async def live() -> None:
        node = graph.node(new)
        await rt.coordinator.remove_node(old)
        await rt.coordinator.add_node(new, node.component or "", node.metadata)
        for edge in graph.edges:
            if new in (edge.src.node, edge.tgt.node):
                await rt.coordinator.add_edge(wire(edge.src), wire(edge.tgt))
        for initial in graph.initials:
            if initial.tgt.node == new:
                await rt.coordinator.add_initial(wire(initial.tgt), initial.data)

    await apply(req, graph_id, lambda: graph.rename_node(old, new), live)


async def changenode(req: Request) -> None:
    graph_id, graph = req.runtime.graph(req.payload)
    name, metadata = req.text("id"), req.mapping("metadata", required=True)
    await apply(req, graph_id, lambda: graph.set_node_metadata(name, metadata))


async def addedge(req: Request) -> None:
    rt = req.runtime
    graph_id, graph = rt.graph(req.payload)
    src, tgt = req.port("src"), req.port("tgt")
    metadata = req.mapping("metadata")
    check_port(req, graph, src, "outports")
    check_port(req, graph, tgt, "inports")
    await apply(
        req,
        graph_id,
        lambda: graph.add_edge(src, tgt, metadata),
        lambda: rt.coordinator.add_edge(wire(src), wire(tgt)),
    )


async def removeedge(req: Request) -> None:
    rt = req.runtime
    graph_id, graph = rt.graph(req.payload)
    src, tgt = req.port("src"), req.port("tgt")
    await apply(
        req,
        graph_id,
        lambda: graph.remove_edge(src, tgt),
        lambda: rt.coordinator.remove_edge(wire(src), wire(tgt)),
    )


async def changeedge(req: Request) -> None:
    graph_id, graph = req.runtime.graph(req.payload)
    src, tgt = req.port("src"), req.port("tgt")
    metadata = req.mapping("metadata")
    await apply(req, graph_id, lambda: graph.set_edge_metadata(src, tgt, metadata))


async def addinitial(req: Request) -> None:
    rt = req.runtime
    graph_id, graph = rt.graph(req.payload)
    source = req.mapping("src", required=True)
    if "data" not in source:
        raise ProtocolError("graph:addinitial: 'src' needs 'data'")
    tgt = req.port("tgt")
    metadata = req.mapping("metadata")
    check_port(req, graph, tgt, "inports")
    await apply(
        req,
        graph_id,
        lambda: graph.add_initial(source["data"], tgt, metadata),
        lambda: rt.coordinator.add_initial(wire(tgt), source["data"]),
    )


async def removeinitial(req: Request) -> None:
    rt = req.runtime
    graph_id, graph = rt.graph(req.payload)
    tgt = req.port("tgt")
    await apply(
        req,
        graph_id,
        lambda: graph.remove_initial(tgt),
        lambda: rt.coordinator.remove_initial(wire(tgt)),
    )


def _exports(kind: Literal["inport", "outport"]) -> dict[str, Callable[[Request], Awaitable[None]]]:
    direction: Literal["inports", "outports"] = "inports" if kind == "inport" else "outports"

    async def add(req: Request) -> None:
        graph_id, graph = req.runtime.graph(req.payload)
        public, node, port = req.text("public"), req.text("node"), req.text("port")
        metadata = req.mapping("metadata")
        check_port(req, graph, PortRef(node, port), direction)
        await apply(req, graph_id, lambda: graph.add_export(kind, public, node, port, metadata))

    async def remove(req: Request) -> None:
        graph_id, graph = req.runtime.graph(req.payload)
        public = req.text("public")
        await apply(req, graph_id, lambda: graph.remove_export(kind, public))

    async def rename(req: Request) -> None:
        graph_id, graph = req.runtime.graph(req.payload)
        old, new = req.text("from"), req.text("to")
        await apply(req, graph_id, lambda: graph.rename_export(kind, old, new))

    return {f"add{kind}": add, f"remove{kind}": remove, f"rename{kind}": rename}


async def addgroup(req: Request) -> None:
    graph_id, graph = req.runtime.graph(req.payload)
    name, nodes, metadata = req.text("name"), req.strings("nodes"), req.mapping("metadata")
    await apply(req, graph_id, lambda: graph.add_group(name, nodes, metadata))


async def removegroup(req: Request) -> None:
    graph_id, graph = req.runtime.graph(req.payload)
    name = req.text("name")
    await apply(req, graph_id, lambda: graph.remove_group(name))


async def renamegroup(req: Request) -> None:
    graph_id, graph = req.runtime.graph(req.payload)
    old, new = req.text("from"), req.text("to")
    await apply(req, graph_id, lambda: graph.rename_group(old, new))


async def changegroup(req: Request) -> None:
    graph_id, graph = req.runtime.graph(req.payload)
    name, metadata = req.text("name"), req.mapping("metadata", required=True)
    await apply(req, graph_id, lambda: graph.set_group_metadata(name, metadata))


COMMANDS: dict[str, Callable[[Request], Awaitable[None]]] = {
    "clear": clear,
    "addnode": addnode,
    "removenode": removenode,
    "renamenode": renamenode,
    "changenode": changenode,
    "addedge": addedge,
    "removeedge": removeedge,
    "changeedge": changeedge,
    "addinitial": addinitial,
    "removeinitial": removeinitial,
    **_exports("inport"),
    **_exports("outport"),
    "addgroup": addgroup,
    "removegroup": removegroup,
    "renamegroup": renamegroup,
    "changegroup": changegroup,
}
UNLOCKED: frozenset[str] = frozenset()
