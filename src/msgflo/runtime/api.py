"""``GET /api``: the running network as JSON, for scripts and for people who need a queue name.

Which queue or topic to send to for ``role.PORT`` depends on what the participant announced
(``role.PORT`` by convention, ``role/port`` for legacy msgflo-python, anything for foreign
participants), so the answer comes from discovery, not from a naming rule. It follows the
runtime's access control: a client that may not read the graph over the FBP protocol may not
read it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from msgflo.runtime.access import Level
from msgflo.runtime.core import Runtime
from msgflo.transport import Address
from msgflo.wiring import VIRTUAL_COMPONENTS

SECRET_HEADER = "X-Msgflo-Secret"


def refusal(rt: Runtime, request: web.Request, needed: Level = Level.READ) -> web.Response | None:
    """Why ``request`` may not have what needs ``needed`` (401 without a secret, 403 with a
    wrong or too weak one); ``None`` when it may. The secret comes as ``?secret=``, the
    :data:`SECRET_HEADER` header or a bearer token (what Prometheus sends from
    ``authorization``/``bearer_token``)."""
    level = request_level(rt, request)
    if level is None:
        return web.json_response({"error": "invalid secret"}, status=403)
    if level is Level.NONE:
        return web.json_response(
            {
                "error": f"a secret is needed (?secret=..., the {SECRET_HEADER} header or a bearer token)"
            },
            status=401,
        )
    if needed is Level.FULL and level is not Level.FULL:
        return web.json_response({"error": "this needs full access"}, status=403)
    return None


def request_level(rt: Runtime, request: web.Request) -> Level | None:
    """The access level of ``request``'s secret; ``None`` for an unknown secret."""
    secret = request.query.get("secret") or request.headers.get(SECRET_HEADER)
    bearer = request.headers.get("Authorization", "")
    if not secret and bearer.lower().startswith("bearer "):
        secret = bearer[7:].strip()
    return rt.options.access.level(secret)


def port_queues(definition: Mapping[str, Any] | None, kind: str) -> dict[str, str | None]:
    """Port name to the queue (MQTT: topic) its participant announced."""
    ports = (definition or {}).get(kind) or []
    return {
        str(p["id"]): (p.get("queue") if isinstance(p.get("queue"), str) else None)
        for p in ports
        if isinstance(p, Mapping) and isinstance(p.get("id"), str)
    }


def queue_line(role: str, definition: Mapping[str, Any]) -> str:
    """One compact line: where to send to a node and where to listen to it."""
    parts = [
        f"{label} {', '.join(f'{port}={queue}' for port, queue in queues.items())}"
        for label, queues in (
            ("in:", port_queues(definition, "inports")),
            ("out:", port_queues(definition, "outports")),
        )
        if queues
    ]
    return f"{role}: queues {'; '.join(parts) or '(no ports)'}"


def listing(rt: Runtime) -> dict[str, Any]:
    """The nodes of the running graph with their ports' queues; ``null`` where no participant
    has announced the node yet."""
    coordinator = rt.coordinator
    definitions = coordinator.registry.definitions()
    graph = rt.graphs.get(rt.running) if rt.running is not None else None
    nodes = []
    for name, node in (graph.nodes if graph is not None else {}).items():
        definition = definitions.get(name)
        virtual = node.component in VIRTUAL_COMPONENTS
        entry: dict[str, Any] = {
            "name": name,
            "component": node.component,
            "instances": None if virtual else coordinator.registry.count(name),
            "inports": port_queues(definition, "inports"),
            "outports": port_queues(definition, "outports"),
        }
        nodes.append(entry)
    return {
        "runtime": {"id": rt.options.id, "label": rt.options.label},
        "broker": Address.parse(coordinator.options.broker_url).redacted(),
        "graph": rt.running,
        "nodes": nodes,
    }
