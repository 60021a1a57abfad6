"""Graph connections → broker bindings (what the original called "setup").

Everything here is pure except :func:`bind`/:func:`unbind`: the plan is recomputed from the graph
and what is known of each role whenever something changes, and the coordinator applies the
difference.  Recomputing instead of patching is what lets a late participant, a participant
that comes back with other queues, or a graph edit all go through one code path.

Queue names come from a *resolver*: from discovery (the coordinator, ``msgflo-setup
--discover``) or from the ``role.PORT`` convention (static ``msgflo-setup``), never assumed
where discovery is available, since foreign participants name their queues freely.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from msgflo import deadletter
from msgflo.definition import queue_name
from msgflo.errors import NetworkError
from msgflo.transport import Binding, BindingType, Broker, QueueKind

ROUNDROBIN = "msgflo/RoundRobin"
PUBSUB = "msgflo/PubSub"
VIRTUAL_COMPONENTS = frozenset({ROUNDROBIN, PUBSUB})
"""Nodes that are broker topology, not processes: never started, never discovered."""

DEAD_LETTER_PREFIX = deadletter.PREFIX

ROUNDROBIN_PORTS = ("in", "out", "deadletter")


class Direction(enum.StrEnum):
    IN = "inports"
    OUT = "outports"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A port of a role as wiring addresses it: hashable, unlike the graph model's
    :class:`~msgflo.graph.parts.PortRef`, because bindings, taps and watched edges are keyed
    by it."""

    process: str
    port: str
    index: int | None = None

    def __str__(self) -> str:
        suffix = "" if self.index is None else f"[{self.index}]"
        return f"{self.process}.{self.port}{suffix}"

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Endpoint:
        index = raw.get("index")
        return cls(str(raw["process"]), str(raw["port"]), int(index) if index is not None else None)


@dataclass(frozen=True, slots=True)
class Link:
    """A graph edge reduced to what wiring needs (no metadata, no source location)."""

    src: Endpoint
    tgt: Endpoint

    def __str__(self) -> str:
        return f"{self.src} -> {self.tgt}"


@dataclass(frozen=True, slots=True)
class InitialPacket:
    """An IIP as wiring sends it: ``data`` delivered to ``tgt``'s queue."""

    data: Any
    tgt: Endpoint


@dataclass(slots=True)
class GraphSpec:
    """The part of an fbp-graph that wiring needs: node → component, edges, IIPs."""

    processes: dict[str, str] = field(default_factory=dict)
    edges: list[Link] = field(default_factory=list)
    initials: list[InitialPacket] = field(default_factory=list)

    @classmethod
    def from_json(cls, graph: Mapping[str, Any]) -> GraphSpec:
        """Read the fbp-graph JSON shape (``processes``, ``connections``)."""
        spec = cls()
        for name, process in (graph.get("processes") or {}).items():
            spec.processes[str(name)] = str((process or {}).get("component") or "")
        for connection in graph.get("connections") or []:
            tgt = Endpoint.from_json(connection["tgt"])
            if "src" in connection:
                spec.edges.append(Link(Endpoint.from_json(connection["src"]), tgt))
            else:
                spec.initials.append(InitialPacket(connection.get("data"), tgt))
        return spec

    def is_virtual(self, process: str) -> bool:
        return self.processes.get(process) in VIRTUAL_COMPONENTS

    def participant_roles(self) -> list[str]:
        return [
            name
            for name, component in self.processes.items()
            if component not in VIRTUAL_COMPONENTS
        ]


class WiringError(NetworkError):
    """An edge that can never be bound as the participants stand (names node and port)."""


class Pending(Exception):
    """The queue is not known yet: the role has not been discovered."""


Resolver = Callable[[str, Direction, str], str]
"""``(role, direction, port) → queue``; raises :class:`Pending` or :class:`WiringError`."""


def find_queue(definition: Mapping[str, Any], direction: Direction, port: str) -> str:
    """The queue behind ``port`` in a discovery definition.

    Port names match case-insensitively when there is no exact match, since the ``.fbp`` parser
    lower-cases ports while participants may announce ``IN``.  Every inport also offers the
    synthesized outport ``dead_<inport>`` (queue ``dead-<inport queue>``).
    """
    ports = [p for p in definition.get(direction.value) or [] if isinstance(p, Mapping)]
    for candidates in (
        [p for p in ports if p.get("id") == port],
        [p for p in ports if str(p.get("id", "")).lower() == port.lower()],
    ):
        if candidates and candidates[0].get("queue"):
            return str(candidates[0]["queue"])
    if direction is Direction.OUT and port.lower().startswith(DEAD_LETTER_PREFIX):
        inport = port[len(DEAD_LETTER_PREFIX) :]
        try:
            return dead_letter_queue(find_queue(definition, Direction.IN, inport))
        except WiringError:
            pass
    role = definition.get("role", "?")
    known = ", ".join(str(p.get("id")) for p in ports) or "none"
    raise WiringError(f"{role} has no {direction.value[:-1]} {port!r} (has: {known})")


dead_letter_queue = deadletter.queue_of


def discovery_resolver(definitions: Mapping[str, Mapping[str, Any]]) -> Resolver:
    """Queues from the discovery definitions of each role."""

    def resolve(role: str, direction: Direction, port: str) -> str:
        definition = definitions.get(role)
        if definition is None:
            raise Pending(role)
        return find_queue(definition, direction, port)

    return resolve


def convention_resolver(role: str, direction: Direction, port: str) -> str:
    """Static ``msgflo-setup``: the original's ``role.PORT`` naming rule, no discovery."""
    if direction is Direction.OUT and port.lower().startswith(DEAD_LETTER_PREFIX):
        return dead_letter_queue(queue_name(role, port[len(DEAD_LETTER_PREFIX) :]))
    return queue_name(role, port)


class Status(enum.StrEnum):
    BOUND = "bound"
    """A broker binding realises the edge(s)."""
    CONNECTED = "connected"
    """Source and target queue coincide: connected without any binding."""
    PENDING = "pending"
    """Waits for a participant to be discovered."""
    ERROR = "error"
    """Can never be bound as things stand (unknown port, unsupported node)."""


@dataclass(frozen=True, slots=True)
class Planned:
    """One unit of wiring: a plain edge, or every edge of a RoundRobin node together."""

    key: str
    edges: tuple[Link, ...]
    status: Status
    binding: Binding | None = None
    detail: str = ""


def plan(graph: GraphSpec, resolve: Resolver) -> list[Planned]:
    """Every edge of ``graph`` with its binding (or why it has none), in graph order."""
    result: list[Planned] = []
    by_node: dict[str, list[Link]] = {}
    for edge in graph.edges:
        virtual = [p for p in (edge.src.process, edge.tgt.process) if graph.is_virtual(p)]
        if virtual:
            by_node.setdefault(virtual[0], []).append(edge)
            continue
        result.append(_plan_edge(edge, resolve))
    for node, edges in by_node.items():
        if graph.processes[node] == ROUNDROBIN:
            result.append(_plan_roundrobin(node, edges, resolve))
        else:
            result.append(
                Planned(
                    key=f"node {node}",
                    edges=tuple(edges),
                    status=Status.ERROR,
                    detail=f"{node}: {graph.processes[node]} nodes make no bindings",
                )
            )
    return result


def _plan_edge(edge: Link, resolve: Resolver) -> Planned:
    key = f"edge {edge}"
    ends: list[str] = []
    waiting: list[str] = []
    for ref, direction in ((edge.src, Direction.OUT), (edge.tgt, Direction.IN)):
        try:
            ends.append(resolve(ref.process, direction, ref.port))
        except Pending as exc:
            waiting.append(str(exc))
        except WiringError as exc:
            return Planned(key, (edge,), Status.ERROR, detail=f"{edge}: {exc}")
    if waiting:
        return Planned(key, (edge,), Status.PENDING, detail=f"waiting for {', '.join(waiting)}")
    src, tgt = ends
    if src.startswith("dead-") and edge.src.port.lower().startswith(DEAD_LETTER_PREFIX):
        inqueue = src[len("dead-") :]
        binding = Binding(src="", tgt=inqueue, type=BindingType.ROUNDROBIN, deadletter=tgt)
        return Planned(key, (edge,), Status.BOUND, binding)
    if src == tgt:
        return Planned(key, (edge,), Status.CONNECTED, detail=f"shared queue {src}")
    return Planned(key, (edge,), Status.BOUND, Binding(src=src, tgt=tgt))


def _plan_roundrobin(node: str, edges: list[Link], resolve: Resolver) -> Planned:
    """A RoundRobin node is one binding: producer → consumer queue, nacks → deadletter queue."""
    key = f"node {node}"
    src = tgt = deadletter = ""
    waiting: list[str] = []
    for edge in edges:
        try:
            if edge.tgt.process == node:
                if edge.tgt.port.lower() != "in":
                    raise WiringError(f"{node}: {ROUNDROBIN} has no inport {edge.tgt.port!r}")
                src = resolve(edge.src.process, Direction.OUT, edge.src.port)
            elif edge.src.port.lower() == "deadletter":
                deadletter = resolve(edge.tgt.process, Direction.IN, edge.tgt.port)
            elif edge.src.port.lower() == "out":
                tgt = resolve(edge.tgt.process, Direction.IN, edge.tgt.port)
            else:
                raise WiringError(f"{node}: {ROUNDROBIN} has no outport {edge.src.port!r}")
        except Pending as exc:
            waiting.append(str(exc))
        except WiringError as exc:
            return Planned(key, tuple(edges), Status.ERROR, detail=f"{edge}: {exc}")
    if waiting:
        return Planned(
            key, tuple(edges), Status.PENDING, detail=f"waiting for {', '.join(waiting)}"
        )
    if not tgt:
        return Planned(key, tuple(edges), Status.ERROR, detail=f"{node}: nothing connected to OUT")
    binding = Binding(src=src, tgt=tgt, type=BindingType.ROUNDROBIN, deadletter=deadletter or None)
    return Planned(key, tuple(edges), Status.BOUND, binding)


def format_binding(binding: Binding) -> list[str]:
    """The original's pretty lines (``msgflo-setup`` output that scripts may parse)."""
    if binding.type is BindingType.PUBSUB:
        return [f"PUBSUB: \t {binding.src} -> {binding.tgt}"]
    lines = []
    if binding.tgt and binding.deadletter:
        lines.append(f"DEADLETTER:\t {binding.tgt} -> {binding.deadletter}")
    if binding.src and binding.tgt:
        lines.append(f"ROUNDROBIN:\t {binding.src} -> {binding.tgt}")
    return lines


def describe_route(binding: Binding, attached: bool = False) -> str:
    """One line for a binding, the same on every broker (``format_binding`` keeps the
    original's tab-separated lines for ``msgflo-setup``)."""
    how = "subscribed by the consumer itself" if attached else binding.type.value
    if binding.deadletter:
        how += f", dead letters to {binding.deadletter}"
    return f"{binding.src or '(none)'} -> {binding.tgt or '(none)'} ({how})"


def pretty_format(bindings: Iterable[Binding]) -> str:
    return "\n".join(line for binding in bindings for line in format_binding(binding))


async def bind(broker: Broker, binding: Binding, *, declare: bool = False) -> None:
    """How a binding reaches the broker; the one place a per-transport strategy would go.

    Every transport implements bindings itself today: RabbitMQ natively, MQTT by forwarding in
    the broker client's process (so the coordinator must keep running, as in the original).
    ``declare`` first declares both ends as participants would, for static setup where no
    participant may have run yet; with discovery the participants have declared them, with
    flags (``persistent``) only they know.
    """
    if declare:
        if binding.src:
            await broker.create_queue(QueueKind.OUT, binding.src)
        for queue in (binding.tgt, binding.deadletter):
            if queue:
                await broker.create_queue(QueueKind.IN, queue)
    await broker.add_binding(binding)


async def unbind(broker: Broker, binding: Binding) -> None:
    await broker.remove_binding(binding)
