"""Which processes of a graph a deployment runs, and the command each one runs with.

Every generator (Procfile, systemd, upstart, compose, Kubernetes) starts from the same list, so
that a role gets the same command whichever way it is deployed: the library's command for its
component with ``#ROLE`` and ``#IIPS`` filled in from the graph, as the original msgflo-procfile
did.  Virtual nodes such as ``msgflo/RoundRobin`` are broker topology, never processes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msgflo.definition import queue_name
from msgflo.errors import ConfigError
from msgflo.graph import Graph, GraphError, load_graph
from msgflo.library import Library, LibraryError
from msgflo.wiring import VIRTUAL_COMPONENTS


class DeployError(ConfigError):
    """Input a generator cannot honour, told in one line that names the file, role or field."""


@dataclass(frozen=True)
class Role:
    """One process of the network.

    ``command`` is the shell-quoted line (Procfiles run it through a shell), ``argv`` the same
    split into words for targets that exec without a shell.  ``inqueues`` are the queues of the
    inports that something feeds (an edge or an exported port), by the ``role.PORT`` convention.
    """

    name: str
    component: str
    command: str
    argv: tuple[str, ...]
    inqueues: tuple[str, ...]


@dataclass(frozen=True)
class Network:
    """A graph ready to deploy: its name, where it and its library live, and its roles."""

    name: str
    graph_file: Path
    library_file: Path | None
    roles: tuple[Role, ...]
    ignored: tuple[str, ...] = ()
    """Roles left out on request: they run elsewhere."""

    def role(self, name: str) -> Role | None:
        return next((role for role in self.roles if role.name == name), None)


def iips_for(graph: Graph, role: str) -> dict[str, Any]:
    return {
        initial.tgt.port: initial.data for initial in graph.initials if initial.tgt.node == role
    }


def fed_inports(graph: Graph, role: str) -> list[str]:
    """Inports of ``role`` that receive messages while the network runs (IIPs do not count:
    they arrive once, on the command line)."""
    ports = [edge.tgt.port for edge in graph.edges if edge.tgt.node == role]
    ports += [port.port for port in graph.inports.values() if port.node == role]
    return list(dict.fromkeys(ports))


def resolve_roles(graph: Graph, library: Library, ignore: Iterable[str] = ()) -> list[Role]:
    """The roles to run, in the graph's node order, without ``ignore`` and virtual nodes."""
    ignored = set(ignore)
    unknown = sorted(ignored - set(graph.nodes))
    if unknown:
        raise DeployError(f"--ignore {unknown[0]}: no such role in the graph")
    roles = []
    for node in graph.nodes.values():
        if node.name in ignored or node.component in VIRTUAL_COMPONENTS:
            continue
        if not node.component:
            raise DeployError(f"role {node.name!r} has no component in the graph")
        try:
            command = library.command_line(node.component, node.name, iips_for(graph, node.name))
        except LibraryError as exc:
            raise DeployError(str(exc)) from exc
        roles.append(
            Role(
                name=node.name,
                component=node.component,
                command=command,
                argv=tuple(shlex.split(command)),
                inqueues=tuple(
                    queue_name(node.name, port) for port in fed_inports(graph, node.name)
                ),
            )
        )
    return roles


def network_name(graph: Graph, graph_file: Path) -> str:
    """The graph's ``name`` property, else the file name without extension."""
    return graph.name or graph_file.stem


def load_network(
    graph_file: Path,
    library_file: Path | None = None,
    componentdirs: Sequence[str] = (),
    ignore: Iterable[str] = (),
    name: str | None = None,
    root: Path | None = None,
) -> Network:
    """Read the graph and the library (the same way ``msgflo`` does) and resolve the roles."""
    root = root or Path.cwd()
    try:
        graph = load_graph(graph_file)
    except GraphError as exc:
        raise DeployError(str(exc)) from exc
    if library_file is not None and not library_file.is_file():
        raise DeployError(f"{library_file}: library file not found")
    try:
        library = Library.load(library_file, list(componentdirs) or None, root=root)
    except LibraryError as exc:
        raise DeployError(str(exc)) from exc
    return Network(
        name=name or network_name(graph, graph_file),
        graph_file=graph_file,
        library_file=library.config.source,
        roles=tuple(resolve_roles(graph, library, ignore)),
        ignored=tuple(ignore),
    )


_DNS_INVALID = re.compile(r"[^a-z0-9-]+")


def dns_label(name: str, what: str = "name") -> str:
    """``name`` as an RFC 1123 label (Kubernetes object names, compose-friendly hosts)."""
    label = _DNS_INVALID.sub("-", name.lower()).strip("-")
    if not label:
        raise DeployError(f"{what} {name!r} has no letters or digits to name it by")
    if len(label) > 63:
        raise DeployError(f"{what} {name!r} is longer than 63 characters as a DNS label")
    return label


@dataclass(frozen=True)
class GeneratedFile:
    """One file a generator writes: its name (no directories) and its text."""

    name: str
    text: str


def executable_argv(role: Role, workdir: Path, bindir: Path | None = None) -> list[str]:
    """The role's argv with the program as an absolute path, as service managers want it.

    A program named with a directory is taken relative to ``workdir``; a bare name is looked
    up in ``bindir`` when given (the layout of the target machine), else beside this Python
    (where msgflo's own commands are installed), then on ``PATH``.
    """
    program, *args = role.argv
    if "/" in program:
        path = Path(os.path.normpath(workdir / program))
    elif bindir is not None:
        path = bindir / program
    else:
        beside = Path(sys.executable).parent / program
        found = str(beside) if beside.is_file() else shutil.which(program)
        if found is None:
            raise DeployError(
                f"role {role.name!r}: command {program!r} is not installed here; "
                "name the directory it has on the target with --bindir"
            )
        path = Path(found)
    return [str(path), *args]
