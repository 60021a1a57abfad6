"""Dead-letter ports and reasons, as participants, wiring and FBP clients see them.

Every inport ``in`` of a participant has a synthesized outport ``dead_in`` that carries what
``in`` fails (queue ``dead-<inqueue>``, msgflo-nodejs' dead-letter exchange).  Our participants
announce it as a field ``deadletter`` of each inport: Node coordinators read only a port's
``id``, ``type`` and ``queue``, and the original's cross-language spec demands exactly its
top-level keys, so neither sees a difference.  How a reason crosses each broker is
:mod:`msgflo.transport.reason`; docs/deadletters.md is the user's side.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from msgflo.transport.reason import bounded

PREFIX = "dead_"
"""``dead_in`` (or ``DEAD_IN``) is the outport that carries what inport ``in`` fails."""

PORT_KEY = "deadletter"
"""The inport field naming its dead-letter queue in our discovery messages."""

FAILURES_CHANNEL = "msgflo/failures"
"""Broadcast channel where our participants report each message they fail, for coordinators
(and through them FBP clients, as ``network:processerror``); nothing is kept for absent
listeners.  It is not the discovery queue ``fbp``, whose Node readers refuse unknown commands."""

TRACEBACK_FRAMES = 5
"""Frames of a failure's traceback kept in its reason: where it failed, not the whole stack."""


def queue_of(inqueue: str) -> str:
    """Where what is failed on ``inqueue`` goes (msgflo-nodejs' dead-letter exchange)."""
    return f"dead-{inqueue}"


def ports_of(definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The dead-letter outports of a discovery definition, one per inport: those of Node and
    foreign participants too, whose inqueues RabbitMQ dead-letters to ``dead-<queue>``."""
    out = []
    for port in definition.get("inports") or []:
        if isinstance(port, Mapping) and isinstance(port.get("id"), str):
            out.append(_port_for(port))
    return out


def _port_for(inport: Mapping[str, Any]) -> dict[str, Any]:
    port: dict[str, Any] = {
        "id": f"{PREFIX}{inport['id']}",
        "type": inport.get("type", "any"),
        "inport": inport["id"],
    }
    if inport.get(PORT_KEY):
        port["queue"] = str(inport[PORT_KEY])
    elif inport.get("queue"):
        port["queue"] = queue_of(str(inport["queue"]))
    if inport.get("schema") is not None:
        port["schema"] = inport["schema"]
    return port


def mark(inports: list[dict[str, Any]]) -> None:
    """Name each inport's dead-letter queue in it, as our participants announce them."""
    for port in inports:
        if port.get("queue"):
            port[PORT_KEY] = queue_of(str(port["queue"]))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def reason_for_nack(role: str, inport: str, why: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The reason of an explicit ``nack(msg, reason=...)``: a text, or fields of one's own."""
    reason: dict[str, Any] = {"reason": "nack", "role": role, "inport": inport, "time": _now()}
    if isinstance(why, Mapping):
        reason.update(why)
    elif why is not None:
        reason["error"] = why
    return reason


def reason_for_exception(role: str, inport: str, exc: BaseException) -> dict[str, Any]:
    """The reason of a ``process`` that raised: what, where and a few frames of how."""
    frames = traceback.extract_tb(exc.__traceback__)[-TRACEBACK_FRAMES:]
    return {
        "reason": "error",
        "error": str(exc),
        "type": type(exc).__name__,
        "traceback": "".join(traceback.format_list(frames)).rstrip(),
        "role": role,
        "inport": inport,
        "time": _now(),
    }


def failure_report(participant_id: str, role: str, reason: Mapping[str, Any]) -> bytes:
    """What a participant sends on :data:`FAILURES_CHANNEL` after failing a message."""
    payload = {"id": participant_id, "role": role, "reason": bounded(reason)}
    return orjson.dumps({"protocol": "msgflo", "command": "failed", "payload": payload})


def describe_failure(role: str, reason: Mapping[str, Any]) -> str:
    """One line for people: ``worker failed a message on in: ValueError: cannot take it``."""
    what = ": ".join(str(reason[k]) for k in ("type", "error") if reason.get(k) not in (None, ""))
    return (
        f"{role} failed a message on {reason.get('inport') or '?'}: {what or reason.get('reason')}"
    )
