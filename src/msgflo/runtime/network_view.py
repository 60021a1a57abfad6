"""``GET /api/network``'s JSON: the running graph with every node's and edge's state.

The shape is fixed (docs/observing.md): the live view draws it and scripts read it. What this
module knows comes from the coordinator alone (the graph, its wiring plan, the participants it
has discovered); figures it cannot know here (rates, depths, processing times, error counts)
are ``null`` or 0.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from msgflo.runtime.api import port_queues
from msgflo.runtime.core import Runtime
from msgflo.transport import Address
from msgflo.wiring import Link, Planned, Status

STATES = {
    Status.BOUND: "wired",
    Status.CONNECTED: "wired",
    Status.PENDING: "pending",
    Status.ERROR: "error",
}


def edge_key(edge: Link) -> str:
    """The edge's ``id`` in the snapshot and in ``/api/edge?id=``."""
    return str(edge)


def snapshot(rt: Runtime) -> dict[str, Any]:
    coordinator = rt.coordinator
    registry = coordinator.registry
    definitions = registry.definitions()
    plans: dict[Link, Planned] = {
        edge: planned for planned in coordinator.wiring.values() for edge in planned.edges
    }
    used: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for edge in coordinator.edges:
        used[edge.src.process, "outports"].add(edge.src.port)
        used[edge.tgt.process, "inports"].add(edge.tgt.port)
    for initial in coordinator.initials.packets:
        used[initial.tgt.process, "inports"].add(initial.tgt.port)

    nodes = []
    for name, role in coordinator.nodes.items():
        instances = registry.of_role(name, live=False)
        live = [i for i in instances if not i.gone]
        ports = {}
        for kind in ("inports", "outports"):
            # announced ports first, in their order; then ports only the graph names (pending)
            queues = port_queues(definitions.get(name), kind)
            queues.update({p: None for p in sorted(used[name, kind]) if p not in queues})
            ports[kind] = [
                {"id": port, "queue": queue, "rate": None}
                | ({"depth": None} if kind == "inports" else {})
                for port, queue in queues.items()
            ]
        nodes.append(
            {
                "name": name,
                "component": role.component,
                "instances": len(live),
                "restarts": 0,
                "last_seen": max((i.last_seen for i in instances), default=None),
                "stale": bool(instances) and not live,
                "processing_ms": None,
                "errors": 0,
                "nacks": 0,
                "dead_letters": 0,
                **ports,
            }
        )

    edges = []
    for edge in coordinator.edges:
        planned = plans.get(edge)
        state = STATES[planned.status] if planned is not None else "pending"
        edges.append(
            {
                "id": edge_key(edge),
                "src": {"node": edge.src.process, "port": edge.src.port},
                "tgt": {"node": edge.tgt.process, "port": edge.tgt.port},
                "state": state,
                "rate": None,
                "depth": None,
                "stalled": False,
                "abnormal": False,
                "error": planned.detail if planned is not None and state == "error" else None,
            }
        )
    return {
        "time": time.time(),
        "graph": rt.running,
        "broker": Address.parse(coordinator.options.broker_url).redacted(),
        "nodes": nodes,
        "edges": edges,
    }
