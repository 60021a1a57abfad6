"""Graphviz DOT for a graph, to look at a network before running it."""

from __future__ import annotations

import json

from msgflo.graph.model import Graph
from msgflo.graph.parts import Edge, PortRef


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _port(ref: PortRef) -> str:
    return ref.port if ref.index is None else f"{ref.port}[{ref.index}]"


def _short(data: object, limit: int = 30) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_dot(graph: Graph) -> str:
    """Nodes as boxes labelled with their component, IIPs as plain text, exported ports as
    small circles; each edge is labelled with the ports it joins."""
    lines = [
        f"digraph {_quote(graph.name or 'graph')} {{",
        "  rankdir=LR;",
        '  node [shape=box, style=rounded, fontname="sans-serif"];',
        '  edge [fontname="sans-serif", fontsize=10];',
    ]
    for node in graph.nodes.values():
        label = f"{node.name}\n{node.component or '?'}"
        lines.append(f"  {_quote(node.name)} [label={_quote(label)}];")
    for i, conn in enumerate(graph.connections):
        tgt = _quote(conn.tgt.node)
        if isinstance(conn, Edge):
            label = f"{_port(conn.src)} → {_port(conn.tgt)}"
            lines.append(f"  {_quote(conn.src.node)} -> {tgt} [label={_quote(label)}];")
        else:
            iip = _quote(f"iip {i}")
            lines.append(f"  {iip} [shape=plaintext, label={_quote(_short(conn.data))}];")
            lines.append(f"  {iip} -> {tgt} [label={_quote(_port(conn.tgt))}, style=dashed];")
    for kind, ports in (("inport", graph.inports), ("outport", graph.outports)):
        for public, exported in ports.items():
            port = _quote(f"{kind} {public}")
            lines.append(f"  {port} [shape=circle, label={_quote(public)}, fontsize=10];")
            inner = _quote(exported.node)
            ends = f"{port} -> {inner}" if kind == "inport" else f"{inner} -> {port}"
            lines.append(f"  {ends} [label={_quote(exported.port)}, style=dotted];")
    lines.append("}")
    return "\n".join(lines) + "\n"
