"""A participant's definition as it travels in discovery: the defaults every msgflo library
fills in, and the queue names of its ports.  Kept apart from :mod:`msgflo.participant` because
the coordinator, the deploy generators and the graph tools need the names without running a
participant."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_ICON = "file-word-o"

PortSpec = Mapping[str, str | Mapping[str, Any]] | Sequence[Mapping[str, Any]]


def queue_name(role: str, port: str, *, legacy: bool = False) -> str:
    """Default queue of a port: Node's ``role.PORT``, or msgflo-python's ``role/port``."""
    return f"{role}/{port}" if legacy else f"{role}.{port.upper()}"


def _ports(spec: PortSpec | None, default: str) -> list[dict[str, Any]]:
    if spec is None:
        return [{"id": default, "type": "any"}]
    if isinstance(spec, Mapping):
        ports = []
        for port_id, value in spec.items():
            if isinstance(value, Mapping):
                ports.append({"id": port_id, "type": "any", **value})
            else:
                ports.append({"id": port_id, "type": value})
        return ports
    result = []
    for port in spec:
        if "id" not in port:
            raise ValueError(f"port declaration {dict(port)!r} has no 'id'")
        result.append({"type": "any", **port})
    return result


def normalize_definition(
    definition: Mapping[str, Any], role: str, *, legacy: bool = False
) -> dict[str, Any]:
    """Fill the defaults every msgflo library fills, without touching the caller's dict.

    The result is the discovery payload: exactly ``id, role, component, label, icon, inports,
    outports`` plus whatever extra keys the user put in, and ports carrying ``id, type, queue``.
    Hidden ports get no queue and are left out, as in msgflo-nodejs.
    """
    if not role:
        raise ValueError("a participant needs a role (the node name in the graph)")
    result: dict[str, Any] = {
        k: v for k, v in definition.items() if k not in ("inports", "outports")
    }
    result.setdefault("component", role)
    result.setdefault("label", "")
    result.setdefault("icon", DEFAULT_ICON)
    result["role"] = role
    result.setdefault("id", f"{role}-{secrets.token_hex(4)}")
    for key, default in (("inports", "in"), ("outports", "out")):
        ports = _ports(definition.get(key), default)
        visible = []
        for port in ports:
            if port.get("hidden"):
                continue
            port.setdefault("queue", queue_name(role, port["id"], legacy=legacy))
            visible.append(port)
        result[key] = visible
    return result
