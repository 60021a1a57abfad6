"""Compare what is bound on the broker with what a graph asks for (``msgflo-setup --check``).

Bindings are compared in halves: a round-robin binding with a dead-letter queue is two links on
the broker (producer to consumer queue, consumer's nacks to the dead-letter queue) that can be
present or missing on their own.  Queue names follow the ``role.PORT`` convention of static
``msgflo-setup``.  A binding on the broker that the graph does not have is *stale* when both
its ends are queues of the graph's nodes (an edge removed from the graph) and *extra* when only
one end is (something outside the graph is bound to it); bindings between queues of other
networks on the same broker are none of this graph's business.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from msgflo.transport import Binding, BindingType, Broker
from msgflo.wiring import GraphSpec, Status, convention_resolver, describe_route, plan


class Kind(enum.StrEnum):
    MISSING = "missing"
    STALE = "stale"
    EXTRA = "extra"


@dataclass(frozen=True, slots=True)
class Difference:
    kind: Kind
    binding: Binding

    def line(self) -> str:
        why = {
            Kind.MISSING: "in the graph, not on the broker",
            Kind.STALE: "on the broker, no longer in the graph",
            Kind.EXTRA: "on the broker, binds a queue of the graph to one outside it",
        }[self.kind]
        return f"{self.kind.value}: {describe_route(self.binding)}: {why}"


def halves(binding: Binding) -> list[Binding]:
    """A binding as the links that can exist on their own."""
    if binding.type is BindingType.ROUNDROBIN and binding.src and binding.deadletter:
        return [
            Binding(binding.src, binding.tgt, BindingType.ROUNDROBIN),
            Binding("", binding.tgt, BindingType.ROUNDROBIN, binding.deadletter),
        ]
    return [binding]


def expected(graph: Mapping[str, Any]) -> tuple[list[Binding], list[str]]:
    """The graph's bindings under the ``role.PORT`` convention, and the edges that can never
    be bound (one line each)."""
    bindings: list[Binding] = []
    errors: list[str] = []
    for planned in plan(GraphSpec.from_json(graph), convention_resolver):
        if planned.binding is not None:
            bindings.extend(halves(planned.binding))
        elif planned.status is Status.ERROR:
            errors.append(planned.detail)
    return bindings, errors


def _ends(binding: Binding) -> list[str]:
    return [q for q in (binding.src, binding.tgt, binding.deadletter) if q]


def compare(
    graph: Mapping[str, Any], wanted: Iterable[Binding], actual: Iterable[Binding]
) -> list[Difference]:
    """Missing, stale and extra bindings, in that order (see the module docstring)."""
    wanted_set = dict.fromkeys(b for binding in wanted for b in halves(binding))
    actual_set = dict.fromkeys(b for binding in actual for b in halves(binding))
    roles = [str(name) for name in (graph.get("processes") or {})]
    prefixes = tuple(
        f"{prefix}{role}{sep}" for role in roles for prefix in ("", "dead-") for sep in "./"
    )
    named = {q for binding in wanted_set for q in _ends(binding)}

    def ours(queue: str) -> bool:
        return queue in named or queue.startswith(prefixes)

    differences = [Difference(Kind.MISSING, b) for b in wanted_set if b not in actual_set]
    for binding in actual_set:
        if binding in wanted_set:
            continue
        owned = [ours(q) for q in _ends(binding)]
        if all(owned):
            differences.append(Difference(Kind.STALE, binding))
        elif any(owned):
            differences.append(Difference(Kind.EXTRA, binding))
    order = list(Kind)
    return sorted(differences, key=lambda d: order.index(d.kind))


async def check(broker: Broker, graph: Mapping[str, Any]) -> tuple[list[Difference], list[str]]:
    """Read the broker's bindings and compare them with ``graph``'s; the connection is the
    caller's."""
    wanted, errors = expected(graph)
    return compare(graph, wanted, await broker.broker_bindings()), errors
