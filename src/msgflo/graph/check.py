"""Finding what makes a well-formed graph unusable before a network is started from it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from msgflo.graph.model import Edge, Graph, Location

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    severity: Severity
    message: str
    location: Location | None = None

    def __str__(self) -> str:
        where = str(self.location) if self.location else "<graph>"
        return f"{where}: {self.severity}: {self.message}"


def check(graph: Graph) -> list[Problem]:
    """Every reference to a node must resolve and every node needs a component; these are
    the rules the reference parser enforces (as errors) plus hints an editor would show."""
    problems: list[Problem] = []
    file_location = Location(graph.file) if graph.file else None

    def missing(name: str) -> bool:
        return name not in graph.nodes

    def add(severity: Severity, message: str, where: Location | None = None) -> None:
        problems.append(Problem(severity, message, where or file_location))

    for node in graph.nodes.values():
        if not node.component:
            add("error", f"node '{node.name}' has no component", node.location)
    for kind, ports in (("inport", graph.inports), ("outport", graph.outports)):
        for exported in ports.values():
            if missing(exported.node):
                add(
                    "error",
                    f"exported {kind} '{exported.public}' refers to undefined node "
                    f"'{exported.node}'",
                    exported.location,
                )
    for conn in graph.connections:
        if isinstance(conn, Edge):
            for end, role in ((conn.src, "source"), (conn.tgt, "target")):
                if missing(end.node):
                    add(
                        "error",
                        f"edge {conn.src.node}.{conn.src.port} -> {conn.tgt.node}."
                        f"{conn.tgt.port} has an undefined {role} node '{end.node}' "
                        "(declare it with a component: name(Component))",
                        conn.location,
                    )
        elif missing(conn.tgt.node):
            add(
                "error",
                f"IIP {json.dumps(conn.data)} is sent to undefined node '{conn.tgt.node}'",
                conn.location,
            )
    for group in graph.groups:
        for name in group.nodes:
            if missing(name):
                add("warning", f"group '{group.name}' lists undefined node '{name}'")
    return problems
