"""Taking back an edit that was refused after the model made it: a copy of the graph's
structure taken before every edit, and putting it back."""

from __future__ import annotations

from dataclasses import replace

from msgflo.graph.model import Graph
from msgflo.graph.parts import Connection, Edge


def snapshot(graph: Graph) -> Graph:
    """A copy to :func:`restore` when an edit turns out to be refused after it was made.

    Edits replace values (IIP data, metadata entries) but never change them in place, so
    the copy shares them: taking it costs one pass over the graph's structure, however
    large or deep the data."""
    return Graph(
        nodes={k: replace(n, metadata=dict(n.metadata)) for k, n in graph.nodes.items()},
        connections=[_copy_connection(c) for c in graph.connections],
        inports={k: replace(e, metadata=dict(e.metadata)) for k, e in graph.inports.items()},
        outports={k: replace(e, metadata=dict(e.metadata)) for k, e in graph.outports.items()},
        groups=[replace(g, nodes=list(g.nodes), metadata=dict(g.metadata)) for g in graph.groups],
        properties=dict(graph.properties),
        case_sensitive=graph.case_sensitive,
    )


def restore(graph: Graph, snapshot: Graph) -> None:
    """Put back the state of :func:`snapshot`, silently: listeners never heard of an edit
    that is undone (the caller drops the events it collected)."""
    graph.nodes, graph.connections = snapshot.nodes, snapshot.connections
    graph.inports, graph.outports = snapshot.inports, snapshot.outports
    graph.groups, graph.properties = snapshot.groups, snapshot.properties
    graph.case_sensitive = snapshot.case_sensitive


def _copy_connection(conn: Connection) -> Connection:
    metadata = dict(conn.metadata)
    if isinstance(conn, Edge):
        return replace(conn, src=replace(conn.src), tgt=replace(conn.tgt), metadata=metadata)
    return replace(conn, tgt=replace(conn.tgt), metadata=metadata)
