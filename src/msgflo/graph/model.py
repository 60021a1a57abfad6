"""The graph model: what a running network is built from, and what clients edit live.

The model mirrors fbp-graph JSON (the format the FBP ecosystem exchanges, read and written by
:mod:`~msgflo.graph.fbp_json`) so that loading and saving loses nothing, and it offers the
editing operations the FBP network protocol's `graph` sub-protocol asks of a runtime, each
announcing itself to listeners (:mod:`~msgflo.graph.events`). Its pieces are in
:mod:`~msgflo.graph.parts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from msgflo.errors import GraphError as GraphError
from msgflo.graph import fbp_json
from msgflo.graph.events import GraphEvents, Listener
from msgflo.graph.parts import (
    Connection,
    Edge,
    ExportedPort,
    Group,
    Initial,
    JsonDict,
    Node,
    PortRef,
    check_node_name,
    merge_metadata,
)

PortKind = Literal["inport", "outport"]


@dataclass
class Graph:
    """An FBP graph. Nodes keep their insertion order, connections (edges and IIPs) their
    written order, because both orders are visible in fbp-graph JSON."""

    nodes: dict[str, Node] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    inports: dict[str, ExportedPort] = field(default_factory=dict)
    outports: dict[str, ExportedPort] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)
    properties: JsonDict = field(default_factory=dict)
    case_sensitive: bool = False
    file: str | None = field(default=None, compare=False, repr=False)
    _events: GraphEvents = field(default_factory=GraphEvents, compare=False, repr=False)

    # -- views ---------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        value = self.properties.get("name")
        return value if isinstance(value, str) else ""

    @property
    def edges(self) -> list[Edge]:
        return [c for c in self.connections if isinstance(c, Edge)]

    @property
    def initials(self) -> list[Initial]:
        return [c for c in self.connections if isinstance(c, Initial)]

    def exports(self, kind: PortKind) -> dict[str, ExportedPort]:
        return self.inports if kind == "inport" else self.outports

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError as exc:
            raise GraphError(f"no node named '{name}'") from exc

    # -- events --------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register a listener; the returned function unregisters it."""
        return self._events.subscribe(listener)

    # -- nodes ---------------------------------------------------------------------------------

    def add_node(
        self, name: str, component: str | None, metadata: Mapping[str, Any] | None = None
    ) -> Node:
        check_node_name(name)
        if name in self.nodes:
            raise GraphError(f"a node named '{name}' already exists")
        node = Node(name, component, dict(metadata or {}))
        self.nodes[name] = node
        self._events.emit("add_node", node)
        return node

    def remove_node(self, name: str) -> Node:
        """Remove a node with everything that refers to it, so no dangling reference remains."""
        node = self.node(name)
        for conn in [c for c in self.connections if _touches(c, name)]:
            self._remove_connection(conn)
        for kind in ("inport", "outport"):
            ports = self.exports(kind)
            for public in [p for p, e in ports.items() if e.node == name]:
                self.remove_export(kind, public)
        for group in list(self.groups):
            if name in group.nodes:
                group.nodes.remove(name)
                if not group.nodes:
                    self.remove_group(group.name)
                else:
                    self._events.emit("change_group", group)
        del self.nodes[name]
        self._events.emit("remove_node", node)
        return node

    def rename_node(self, old: str, new: str) -> Node:
        node = self.node(old)
        if new == old:
            return node
        check_node_name(new)
        if new in self.nodes:
            raise GraphError(f"a node named '{new}' already exists")
        self.nodes = {(new if k == old else k): v for k, v in self.nodes.items()}
        node.name = new
        for conn in self.connections:
            ends = [conn.tgt] if isinstance(conn, Initial) else [conn.src, conn.tgt]
            for end in ends:
                if end.node == old:
                    end.node = new
        for exported in [*self.inports.values(), *self.outports.values()]:
            if exported.node == old:
                exported.node = new
        for group in self.groups:
            group.nodes = [new if n == old else n for n in group.nodes]
        self._events.emit("rename_node", node, old)
        return node

    def set_node_metadata(self, name: str, changes: Mapping[str, Any]) -> Node:
        node = self.node(name)
        merge_metadata(node.metadata, changes)
        self._events.emit("change_node", node)
        return node

    # -- edges ---------------------------------------------------------------------------------

    def add_edge(
        self, src: PortRef, tgt: PortRef, metadata: Mapping[str, Any] | None = None
    ) -> Edge:
        self.node(src.node)
        self.node(tgt.node)
        if self.find_edge(src, tgt) is not None:
            raise GraphError(f"an edge {_fmt(src)} -> {_fmt(tgt)} already exists")
        edge = Edge(src, tgt, dict(metadata or {}))
        self.connections.append(edge)
        self._events.emit("add_edge", edge)
        return edge

    def find_edge(self, src: PortRef, tgt: PortRef) -> Edge | None:
        for edge in self.edges:
            if edge.src == src and edge.tgt == tgt:
                return edge
        return None

    def _edge(self, src: PortRef, tgt: PortRef) -> Edge:
        edge = self.find_edge(src, tgt)
        if edge is None:
            raise GraphError(f"no edge {_fmt(src)} -> {_fmt(tgt)}")
        return edge

    def remove_edge(self, src: PortRef, tgt: PortRef) -> Edge:
        edge = self._edge(src, tgt)
        self._remove_connection(edge)
        return edge

    def set_edge_metadata(self, src: PortRef, tgt: PortRef, changes: Mapping[str, Any]) -> Edge:
        edge = self._edge(src, tgt)
        merge_metadata(edge.metadata, changes)
        self._events.emit("change_edge", edge)
        return edge

    def _remove_connection(self, conn: Connection) -> None:
        self.connections = [c for c in self.connections if c is not conn]
        self._events.emit("remove_initial" if isinstance(conn, Initial) else "remove_edge", conn)

    # -- IIPs ----------------------------------------------------------------------------------

    def add_initial(
        self, data: Any, tgt: PortRef, metadata: Mapping[str, Any] | None = None
    ) -> Initial:
        self.node(tgt.node)
        initial = Initial(data, tgt, dict(metadata or {}))
        self.connections.append(initial)
        self._events.emit("add_initial", initial)
        return initial

    def remove_initial(self, tgt: PortRef) -> list[Initial]:
        """Remove every IIP sent to `tgt` (the protocol names an IIP by its target only)."""
        found = [c for c in self.initials if c.tgt == tgt]
        if not found:
            raise GraphError(f"no IIP to {_fmt(tgt)}")
        for initial in found:
            self._remove_connection(initial)
        return found

    # -- exported ports ------------------------------------------------------------------------

    def add_export(
        self,
        kind: PortKind,
        public: str,
        node: str,
        port: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> ExportedPort:
        self.node(node)
        ports = self.exports(kind)
        if public in ports:
            raise GraphError(f"an exported {kind} named '{public}' already exists")
        exported = ExportedPort(public, node, port, dict(metadata or {}))
        ports[public] = exported
        self._events.emit(f"add_{kind}", exported)
        return exported

    def _export(self, kind: PortKind, public: str) -> ExportedPort:
        try:
            return self.exports(kind)[public]
        except KeyError as exc:
            raise GraphError(f"no exported {kind} named '{public}'") from exc

    def remove_export(self, kind: PortKind, public: str) -> ExportedPort:
        exported = self._export(kind, public)
        del self.exports(kind)[public]
        self._events.emit(f"remove_{kind}", exported)
        return exported

    def rename_export(self, kind: PortKind, old: str, new: str) -> ExportedPort:
        exported = self._export(kind, old)
        ports = self.exports(kind)
        if new != old and new in ports:
            raise GraphError(f"an exported {kind} named '{new}' already exists")
        renamed = {(new if k == old else k): v for k, v in ports.items()}
        ports.clear()
        ports.update(renamed)
        exported.public = new
        self._events.emit(f"rename_{kind}", exported, old)
        return exported

    def set_export_metadata(
        self, kind: PortKind, public: str, changes: Mapping[str, Any]
    ) -> ExportedPort:
        exported = self._export(kind, public)
        merge_metadata(exported.metadata, changes)
        self._events.emit(f"change_{kind}", exported)
        return exported

    # -- groups --------------------------------------------------------------------------------

    def group(self, name: str) -> Group:
        for group in self.groups:
            if group.name == name:
                return group
        raise GraphError(f"no group named '{name}'")

    def add_group(
        self, name: str, nodes: list[str], metadata: Mapping[str, Any] | None = None
    ) -> Group:
        if any(g.name == name for g in self.groups):
            raise GraphError(f"a group named '{name}' already exists")
        for node in nodes:
            self.node(node)
        group = Group(name, list(nodes), dict(metadata or {}))
        self.groups.append(group)
        self._events.emit("add_group", group)
        return group

    def remove_group(self, name: str) -> Group:
        group = self.group(name)
        self.groups.remove(group)
        self._events.emit("remove_group", group)
        return group

    def rename_group(self, old: str, new: str) -> Group:
        group = self.group(old)
        if new != old and any(g.name == new for g in self.groups):
            raise GraphError(f"a group named '{new}' already exists")
        group.name = new
        self._events.emit("rename_group", group, old)
        return group

    def set_group_metadata(self, name: str, changes: Mapping[str, Any]) -> Group:
        group = self.group(name)
        merge_metadata(group.metadata, changes)
        self._events.emit("change_group", group)
        return group

    def set_properties(self, changes: Mapping[str, Any]) -> None:
        merge_metadata(self.properties, changes)
        self._events.emit("change_properties", self.properties)

    # -- fbp-graph JSON ------------------------------------------------------------------------

    def to_json(self) -> JsonDict:
        """fbp-graph JSON, as :func:`msgflo.graph.fbp_json.write` writes it."""
        return fbp_json.write(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], file: str | None = None) -> Graph:
        """Load fbp-graph JSON, as leniently as :func:`msgflo.graph.fbp_json.read` reads it."""
        graph = cls(file=file)
        fbp_json.read(raw, graph)
        return graph


def _touches(conn: Connection, name: str) -> bool:
    return conn.tgt.node == name or (isinstance(conn, Edge) and conn.src.node == name)


def _fmt(ref: PortRef) -> str:
    index = "" if ref.index is None else f"[{ref.index}]"
    return f"{ref.node}.{ref.port}{index}"
