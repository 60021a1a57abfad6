"""The graph model: what a running network is built from, and what clients edit live.

The model mirrors fbp-graph JSON (the format the FBP ecosystem exchanges) so that loading and
saving loses nothing, and it offers the editing operations the FBP network protocol's `graph`
sub-protocol asks of a runtime, each announcing itself to listeners.
"""

from __future__ import annotations

import copy
import json
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from msgflo.errors import GraphError as GraphError

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Location:
    """Where something was written, so that problems can point at it; JSON graphs only know
    the file."""

    file: str | None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file or "<string>"
        return where if self.line is None else f"{where}:{self.line}:{self.column}"


@dataclass
class Node:
    """A process: an instance of a component under a name (its role)."""

    name: str
    component: str | None = None
    metadata: JsonDict = field(default_factory=dict)
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass
class PortRef:
    """One end of a connection; `index` addresses one connection of an array port."""

    node: str
    port: str
    index: int | None = None

    def to_json(self) -> JsonDict:
        out: JsonDict = {"process": self.node, "port": self.port}
        if self.index is not None:
            out["index"] = self.index
        return out


@dataclass
class Edge:
    """A connection from an outport to an inport."""

    src: PortRef
    tgt: PortRef
    metadata: JsonDict = field(default_factory=dict)
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass
class Initial:
    """An initial information packet (IIP): data sent once to an inport when the network starts."""

    data: Any
    tgt: PortRef
    metadata: JsonDict = field(default_factory=dict)
    location: Location | None = field(default=None, compare=False, repr=False)


Connection = Edge | Initial


@dataclass
class ExportedPort:
    """A port of an inner node published as a port of the whole graph."""

    public: str
    node: str
    port: str
    metadata: JsonDict = field(default_factory=dict)
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass
class Group:
    """A named set of nodes, used by editors to draw boxes around parts of a graph."""

    name: str
    nodes: list[str] = field(default_factory=list)
    metadata: JsonDict = field(default_factory=dict)


@dataclass(frozen=True)
class GraphEvent:
    """What changed: `kind` names the operation (e.g. "add_node"), `subject` is the object
    after the change (or the removed one), `old` carries the previous name or value."""

    kind: str
    subject: Any
    old: Any = None


Listener = Callable[[GraphEvent], None]
PortKind = Literal["inport", "outport"]


def merge_metadata(target: JsonDict, changes: Mapping[str, Any]) -> None:
    """Apply a metadata change the way FBP clients expect: `None` deletes a key."""
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


def _metadata_from_json(raw: Any, what: str) -> JsonDict:
    if _falsy(raw):
        return {}
    if not isinstance(raw, dict):
        raise GraphError(f"{what}: metadata must be an object")
    return dict(raw)


def _port_from_json(raw: Any, what: str) -> PortRef:
    if not isinstance(raw, dict) or not isinstance(raw.get("process"), str):
        raise GraphError(f"{what}: expected an object with 'process' and 'port'")
    port = raw.get("port")
    if not isinstance(port, str):
        raise GraphError(f"{what}: 'port' must be a string")
    index = raw.get("index")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
        raise GraphError(f"{what}: 'index' must be an integer")
    return PortRef(raw["process"], port, index)


def _with_metadata(out: JsonDict, metadata: JsonDict) -> JsonDict:
    if metadata:
        out["metadata"] = copy.deepcopy(metadata)
    return out


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
    _listeners: list[Listener] = field(default_factory=list, compare=False, repr=False)

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

    # -- transactions ----------------------------------------------------------------------------

    def snapshot(self) -> Graph:
        """A copy to :meth:`restore` when an edit turns out to be refused after it was made.

        Edits replace values (IIP data, metadata entries) but never change them in place, so
        the copy shares them: taking it costs one pass over the graph's structure, however
        large or deep the data."""
        return Graph(
            nodes={k: replace(n, metadata=dict(n.metadata)) for k, n in self.nodes.items()},
            connections=[_copy_connection(c) for c in self.connections],
            inports={k: replace(e, metadata=dict(e.metadata)) for k, e in self.inports.items()},
            outports={k: replace(e, metadata=dict(e.metadata)) for k, e in self.outports.items()},
            groups=[
                replace(g, nodes=list(g.nodes), metadata=dict(g.metadata)) for g in self.groups
            ],
            properties=dict(self.properties),
            case_sensitive=self.case_sensitive,
        )

    def restore(self, snapshot: Graph) -> None:
        """Put back the state of :meth:`snapshot`, silently: listeners never heard of an edit
        that is undone (the caller drops the events it collected)."""
        self.nodes, self.connections = snapshot.nodes, snapshot.connections
        self.inports, self.outports = snapshot.inports, snapshot.outports
        self.groups, self.properties = snapshot.groups, snapshot.properties
        self.case_sensitive = snapshot.case_sensitive

    # -- events --------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register a listener; the returned function unregisters it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, kind: str, subject: Any, old: Any = None) -> None:
        event = GraphEvent(kind, subject, old)
        for listener in list(self._listeners):
            listener(event)

    # -- nodes ---------------------------------------------------------------------------------

    def add_node(
        self, name: str, component: str | None, metadata: Mapping[str, Any] | None = None
    ) -> Node:
        _check_node_name(name)
        if name in self.nodes:
            raise GraphError(f"a node named '{name}' already exists")
        node = Node(name, component, dict(metadata or {}))
        self.nodes[name] = node
        self._emit("add_node", node)
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
                    self._emit("change_group", group)
        del self.nodes[name]
        self._emit("remove_node", node)
        return node

    def rename_node(self, old: str, new: str) -> Node:
        node = self.node(old)
        if new == old:
            return node
        _check_node_name(new)
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
        self._emit("rename_node", node, old)
        return node

    def set_node_metadata(self, name: str, changes: Mapping[str, Any]) -> Node:
        node = self.node(name)
        merge_metadata(node.metadata, changes)
        self._emit("change_node", node)
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
        self._emit("add_edge", edge)
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
        self._emit("change_edge", edge)
        return edge

    def _remove_connection(self, conn: Connection) -> None:
        self.connections = [c for c in self.connections if c is not conn]
        self._emit("remove_initial" if isinstance(conn, Initial) else "remove_edge", conn)

    # -- IIPs ----------------------------------------------------------------------------------

    def add_initial(
        self, data: Any, tgt: PortRef, metadata: Mapping[str, Any] | None = None
    ) -> Initial:
        self.node(tgt.node)
        initial = Initial(data, tgt, dict(metadata or {}))
        self.connections.append(initial)
        self._emit("add_initial", initial)
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
        self._emit(f"add_{kind}", exported)
        return exported

    def _export(self, kind: PortKind, public: str) -> ExportedPort:
        try:
            return self.exports(kind)[public]
        except KeyError as exc:
            raise GraphError(f"no exported {kind} named '{public}'") from exc

    def remove_export(self, kind: PortKind, public: str) -> ExportedPort:
        exported = self._export(kind, public)
        del self.exports(kind)[public]
        self._emit(f"remove_{kind}", exported)
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
        self._emit(f"rename_{kind}", exported, old)
        return exported

    def set_export_metadata(
        self, kind: PortKind, public: str, changes: Mapping[str, Any]
    ) -> ExportedPort:
        exported = self._export(kind, public)
        merge_metadata(exported.metadata, changes)
        self._emit(f"change_{kind}", exported)
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
        self._emit("add_group", group)
        return group

    def remove_group(self, name: str) -> Group:
        group = self.group(name)
        self.groups.remove(group)
        self._emit("remove_group", group)
        return group

    def rename_group(self, old: str, new: str) -> Group:
        group = self.group(old)
        if new != old and any(g.name == new for g in self.groups):
            raise GraphError(f"a group named '{new}' already exists")
        group.name = new
        self._emit("rename_group", group, old)
        return group

    def set_group_metadata(self, name: str, changes: Mapping[str, Any]) -> Group:
        group = self.group(name)
        merge_metadata(group.metadata, changes)
        self._emit("change_group", group)
        return group

    def set_properties(self, changes: Mapping[str, Any]) -> None:
        merge_metadata(self.properties, changes)
        self._emit("change_properties", self.properties)

    # -- fbp-graph JSON ------------------------------------------------------------------------

    def to_json(self) -> JsonDict:
        """fbp-graph JSON with the keys in the order the reference `fbp` parser prints them.

        `properties` is left out when empty and metadata objects when empty, as the
        reference does; neither carries information."""
        out: JsonDict = {
            "inports": {p: _export_json(e) for p, e in self.inports.items()},
            "outports": {p: _export_json(e) for p, e in self.outports.items()},
            "groups": [
                _with_metadata({"name": g.name, "nodes": list(g.nodes)}, g.metadata)
                for g in self.groups
            ],
            "processes": {n.name: _node_json(n) for n in self.nodes.values()},
            "connections": [_connection_json(c) for c in self.connections],
        }
        if self.properties:
            out["properties"] = copy.deepcopy(self.properties)
        out["caseSensitive"] = self.case_sensitive
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], file: str | None = None) -> Graph:
        """Load fbp-graph JSON, accepting what fbp-graph's own loader accepts: a section that is
        missing or JavaScript-falsy (``null``, ``false``, ``0``, ``""``) is empty, as is its
        metadata; a map section may be written as an array (its entries are then named by index,
        as JavaScript's ``Object.keys`` names them); a ``null`` exported port is skipped; an edge
        written twice is kept once. The legacy `environment.runtime` key is read as `type`.
        What fbp-graph would silently drop or keep as garbage is refused in one line instead."""
        if not isinstance(raw, Mapping):
            raise GraphError("a JSON graph must be an object")
        graph = cls(file=file, case_sensitive=bool(raw.get("caseSensitive", False)))
        properties = {} if _falsy(raw.get("properties")) else raw["properties"]
        if not isinstance(properties, dict):
            raise GraphError("'properties' must be an object")
        graph.properties = copy.deepcopy(properties)
        env = graph.properties.get("environment")
        if isinstance(env, dict) and "type" not in env and "runtime" in env:
            env["type"] = env.pop("runtime")
        for name, proc in _entries(raw, "processes"):
            _check_node_name(name, "process ")
            if not isinstance(proc, dict):
                raise GraphError(f"process '{name}' must be an object")
            component = proc.get("component")
            if component is not None and not isinstance(component, str):
                raise GraphError(f"process '{name}': 'component' must be a string")
            metadata = _metadata_from_json(proc.get("metadata"), f"process '{name}'")
            graph.nodes[name] = Node(name, component, metadata)
        seen: set[tuple[tuple[str, str, int | None], ...]] = set()
        for i, conn in enumerate(_items(raw, "connections")):
            connection = _connection_from_json(conn, f"connection #{i + 1}")
            if isinstance(connection, Edge):
                ends = (_key(connection.src), _key(connection.tgt))
                if ends in seen:
                    continue
                seen.add(ends)
            graph.connections.append(connection)
        for key, ports in (("inports", graph.inports), ("outports", graph.outports)):
            for public, exp in _entries(raw, key):
                if _falsy(exp):
                    continue
                what = f"{key[:-1]} '{public}'"
                ref = _port_from_json(exp, what)
                metadata = _metadata_from_json(exp.get("metadata"), what)
                ports[public] = ExportedPort(public, ref.node, ref.port, metadata)
        for i, grp in enumerate(_items(raw, "groups")):
            if not isinstance(grp, dict) or not isinstance(grp.get("name"), str):
                raise GraphError(f"group #{i + 1}: expected an object with a 'name'")
            members = [] if _falsy(grp.get("nodes")) else grp["nodes"]
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise GraphError(f"group '{grp['name']}': 'nodes' must be a list of names")
            metadata = _metadata_from_json(grp.get("metadata"), f"group '{grp['name']}'")
            graph.groups.append(Group(grp["name"], list(members), metadata))
        return graph


def node_name_problem(name: str) -> str | None:
    """Why `name` cannot be a node, or None. A node's name is its participant's role, which
    reaches command lines (``#ROLE``), queue names and log lines: a control character never
    survives that trip, and a leading '-' would be read as an option of the command."""
    if not name:
        return "a node name cannot be empty"
    if name.startswith("-"):
        return "a node name cannot start with '-' (the participant's command would take it as an option)"
    if any(unicodedata.category(c) in _UNPRINTABLE for c in name):
        return "a node name cannot contain control characters or line breaks"
    return None


_UNPRINTABLE = frozenset({"Cc", "Zl", "Zp"})


def _check_node_name(name: str, what: str = "node ") -> None:
    problem = node_name_problem(name)
    if problem is not None:
        # JSON quoting shows control characters as escapes instead of printing them
        raise GraphError(f"{what}{json.dumps(name)}: {problem}")


def _falsy(value: Any) -> bool:
    """JavaScript's falsiness for JSON values: what fbp-graph's loader reads as "not given"."""
    return value is None or (isinstance(value, bool | int | float | str) and not value)


def _entries(raw: Mapping[str, Any], key: str) -> list[tuple[str, Any]]:
    value = raw.get(key)
    if _falsy(value):
        return []
    if isinstance(value, list):
        return [(str(i), item) for i, item in enumerate(value)]
    if not isinstance(value, dict):
        raise GraphError(f"'{key}' must be an object")
    return list(value.items())


def _items(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    if _falsy(value):
        return []
    if not isinstance(value, list):
        raise GraphError(f"'{key}' must be a list")
    return value


def _connection_from_json(conn: Any, what: str) -> Connection:
    """An IIP when `data` is there (even `null`, as in fbp-graph), else an edge."""
    if not isinstance(conn, dict) or "tgt" not in conn:
        raise GraphError(f"{what}: expected an object with 'tgt'")
    tgt = _port_from_json(conn["tgt"], what)
    metadata = _metadata_from_json(conn.get("metadata"), what)
    if "data" in conn:
        return Initial(copy.deepcopy(conn["data"]), tgt, metadata)
    if "src" in conn:
        return Edge(_port_from_json(conn["src"], what), tgt, metadata)
    raise GraphError(f"{what}: needs 'src' or 'data'")


def _key(ref: PortRef) -> tuple[str, str, int | None]:
    return (ref.node, ref.port, ref.index)


def _touches(conn: Connection, name: str) -> bool:
    return conn.tgt.node == name or (isinstance(conn, Edge) and conn.src.node == name)


def _copy_connection(conn: Connection) -> Connection:
    metadata = dict(conn.metadata)
    if isinstance(conn, Edge):
        return replace(conn, src=replace(conn.src), tgt=replace(conn.tgt), metadata=metadata)
    return replace(conn, tgt=replace(conn.tgt), metadata=metadata)


def _fmt(ref: PortRef) -> str:
    index = "" if ref.index is None else f"[{ref.index}]"
    return f"{ref.node}.{ref.port}{index}"


def _node_json(node: Node) -> JsonDict:
    out: JsonDict = {}
    if node.component is not None:
        out["component"] = node.component
    return _with_metadata(out, node.metadata)


def _export_json(exported: ExportedPort) -> JsonDict:
    return _with_metadata({"process": exported.node, "port": exported.port}, exported.metadata)


def _connection_json(conn: Connection) -> JsonDict:
    if isinstance(conn, Edge):
        out: JsonDict = {"src": conn.src.to_json(), "tgt": conn.tgt.to_json()}
    else:
        out = {"data": copy.deepcopy(conn.data), "tgt": conn.tgt.to_json()}
    return _with_metadata(out, conn.metadata)
