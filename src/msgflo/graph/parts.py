"""The pieces a graph is made of (nodes, connections, exported ports, groups) and the rules a
piece follows wherever it comes from: a node's name, a metadata change."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from msgflo.errors import GraphError

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


def merge_metadata(target: JsonDict, changes: Mapping[str, Any]) -> None:
    """Apply a metadata change the way FBP clients expect: `None` deletes a key."""
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


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


def check_node_name(name: str, what: str = "node ") -> None:
    problem = node_name_problem(name)
    if problem is not None:
        # JSON quoting shows control characters as escapes instead of printing them
        raise GraphError(f"{what}{json.dumps(name)}: {problem}")
