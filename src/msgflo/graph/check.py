"""Finding what makes a well-formed graph unusable before a network is started from it."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from msgflo.graph.model import Graph
from msgflo.graph.parts import Edge, Location, PortRef

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    severity: Severity
    message: str
    location: Location | None = None

    def __str__(self) -> str:
        where = str(self.location) if self.location else "<graph>"
        return f"{where}: {self.severity}: {self.message}"


@dataclass(frozen=True)
class KnownComponent:
    """What the library says about a component: the names of its ports where its definition
    can be read without running it, None where it cannot (those ports go unchecked)."""

    inports: frozenset[str] | None = None
    outports: frozenset[str] | None = None


ComponentLookup = Callable[[str], KnownComponent | None]


def check(graph: Graph, *, components_required: bool = True) -> list[Problem]:
    """Every reference to a node must resolve; these are the rules the reference parser
    enforces (as errors) plus hints an editor would show.

    A node without a component is an error in .fbp (there it is a reference to an undeclared
    node, which the reference parser rejects) and a warning in JSON (`components_required`
    False), where msgflo, like the original, starts nothing for it and waits for a participant
    of that role to announce itself."""
    problems: list[Problem] = []
    file_location = Location(graph.file) if graph.file else None

    def missing(name: str) -> bool:
        return name not in graph.nodes

    def add(severity: Severity, message: str, where: Location | None = None) -> None:
        problems.append(Problem(severity, message, where or file_location))

    for node in graph.nodes.values():
        if not node.component:
            if components_required:
                add("error", f"node '{node.name}' has no component", node.location)
            else:
                add(
                    "warning",
                    f"node '{node.name}' has no component: msgflo starts nothing for it and "
                    f"waits for a participant with role '{node.name}' to announce itself",
                    node.location,
                )
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


def check_components(
    graph: Graph, lookup: ComponentLookup, known_names: Iterable[str]
) -> list[Problem]:
    """Components the library does not have, and ports their definitions do not have, each with
    the closest known name. An unknown component is a warning, as running agrees: msgflo starts
    nothing for it and waits for a participant of that role to announce itself. An unknown port
    is an error: the edge can never be wired. Port names compare case-insensitively, as wiring
    matches them."""
    problems: list[Problem] = []
    names = sorted(set(known_names))
    file_location = Location(graph.file) if graph.file else None
    known: dict[str, KnownComponent | None] = {}
    for node in graph.nodes.values():
        if not node.component:
            continue
        found = known[node.name] = lookup(node.component)
        if found is None:
            problems.append(
                Problem(
                    "warning",
                    f"node '{node.name}': component '{node.component}' is not in the library"
                    f"{_suggest(node.component, names)}; msgflo will wait for a participant "
                    f"with role '{node.name}' to announce itself",
                    node.location or file_location,
                )
            )

    def port(ref: PortRef, kind: Literal["inport", "outport"], where: Location | None) -> None:
        component = known.get(ref.node)
        ports = None if component is None else getattr(component, f"{kind}s")
        if ports is None or ref.port.lower() in {p.lower() for p in ports}:
            return
        problems.append(
            Problem(
                "error",
                f"node '{ref.node}' ({graph.nodes[ref.node].component}) has no {kind} "
                f"'{ref.port}'{_suggest(ref.port, sorted(ports))}",
                where or file_location,
            )
        )

    for conn in graph.connections:
        if isinstance(conn, Edge):
            port(conn.src, "outport", conn.location)
        port(conn.tgt, "inport", conn.location)
    for exported in graph.inports.values():
        port(PortRef(exported.node, exported.port), "inport", exported.location)
    for exported in graph.outports.values():
        port(PortRef(exported.node, exported.port), "outport", exported.location)
    return problems


def _suggest(word: str, candidates: list[str]) -> str:
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1)
    return f" (did you mean '{lowered[close[0]]}'?)" if close else ""
