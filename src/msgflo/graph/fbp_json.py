"""fbp-graph JSON, the format the FBP ecosystem exchanges: a graph written with its keys in the
order the reference ``fbp`` parser prints them, and read as leniently as fbp-graph's own loader
reads it, so that loading and saving loses nothing."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from msgflo.errors import GraphError
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
)

if TYPE_CHECKING:
    from msgflo.graph.model import Graph


def write(graph: Graph) -> JsonDict:
    """fbp-graph JSON with the keys in the order the reference `fbp` parser prints them.

    `properties` is left out when empty and metadata objects when empty, as the
    reference does; neither carries information."""
    out: JsonDict = {
        "inports": {p: _export_json(e) for p, e in graph.inports.items()},
        "outports": {p: _export_json(e) for p, e in graph.outports.items()},
        "groups": [
            _with_metadata({"name": g.name, "nodes": list(g.nodes)}, g.metadata)
            for g in graph.groups
        ],
        "processes": {n.name: _node_json(n) for n in graph.nodes.values()},
        "connections": [_connection_json(c) for c in graph.connections],
    }
    if graph.properties:
        out["properties"] = copy.deepcopy(graph.properties)
    out["caseSensitive"] = graph.case_sensitive
    return out


def read(raw: Mapping[str, Any], graph: Graph) -> None:
    """Fill the empty ``graph`` from fbp-graph JSON, accepting what fbp-graph's own loader
    accepts: a section that is missing or JavaScript-falsy (``null``, ``false``, ``0``, ``""``)
    is empty, as is its metadata; a map section may be written as an array (its entries are
    then named by index, as JavaScript's ``Object.keys`` names them); a ``null`` exported port
    is skipped; an edge written twice is kept once. The legacy `environment.runtime` key is
    read as `type`. What fbp-graph would silently drop or keep as garbage is refused in one
    line instead."""
    if not isinstance(raw, Mapping):
        raise GraphError("a JSON graph must be an object")
    graph.case_sensitive = bool(raw.get("caseSensitive", False))
    properties = {} if _falsy(raw.get("properties")) else raw["properties"]
    if not isinstance(properties, dict):
        raise GraphError("'properties' must be an object")
    graph.properties = copy.deepcopy(properties)
    env = graph.properties.get("environment")
    if isinstance(env, dict) and "type" not in env and "runtime" in env:
        env["type"] = env.pop("runtime")
    for name, proc in _entries(raw, "processes"):
        check_node_name(name, "process ")
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
