"""Building what the runtime sends: payloads from the schema's fields only.

The original echoed request payloads, which leaked the client's secret to every connected client
and made every strict client (fbp-spec 0.8, noflo-ui) reject the reply. Here a payload is built
from a table of the fields each output message may carry (fbp-protocol 0.9.8, output schemas);
anything else is dropped, so an echo cannot happen by accident. A unit test compares this table
with the published JSON schemas, field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from msgflo import errors
from msgflo.runtime.protocol.payloads import ErrorPayload

PROTOCOL_VERSION = "0.8"
"""``requestId``/``responseTo`` exist since 0.8; fbp-protocol 0.9.8's tools accept it."""

_PORT_EVENT = ("id", "src", "tgt", "graph", "subgraph")
_GRAPH_CHANGE = ("from", "to", "graph")
_MAY_BE_NULL = frozenset({"data", "payload"})
"""Fields whose value is user data, where ``null`` is data; elsewhere ``None`` means absent."""


@dataclass(frozen=True, slots=True)
class Shape:
    """The fields an output payload may carry and the ones it must."""

    fields: frozenset[str] | None
    """``None``: the payload is not an object (``componentsready`` is a bare count)."""
    required: frozenset[str] = frozenset()
    responds: bool = True
    """Whether the envelope may carry ``responseTo`` (a few outputs reuse input schemas)."""


def _shape(fields: tuple[str, ...], required: tuple[str, ...] = (), responds: bool = True) -> Shape:
    return Shape(frozenset(fields), frozenset(required), responds)


_ERROR = _shape(("message",), ("message",))

OUTPUTS: dict[tuple[str, str], Shape] = {
    ("runtime", "error"): _ERROR,
    ("runtime", "ports"): _shape(
        ("graph", "inPorts", "outPorts"), ("graph", "inPorts", "outPorts")
    ),
    ("runtime", "runtime"): _shape(
        (
            "allCapabilities",
            "capabilities",
            "graph",
            "id",
            "label",
            "namespace",
            "repository",
            "repositoryVersion",
            "type",
            "version",
        ),
        ("capabilities", "type", "version"),
    ),
    ("runtime", "packetsent"): _shape(
        ("event", "graph", "payload", "port", "schema", "type"), ("event", "graph", "port")
    ),
    ("runtime", "packet"): _shape(
        ("event", "graph", "payload", "port", "schema", "type"),
        ("event", "graph", "port"),
        responds=False,
    ),
    ("graph", "error"): _ERROR,
    ("graph", "clear"): _shape(("description", "icon", "id", "library", "main", "name"), ("id",)),
    ("graph", "addnode"): _shape(
        ("component", "graph", "id", "metadata"), ("component", "graph", "id")
    ),
    ("graph", "removenode"): _shape(("graph", "id"), ("graph", "id")),
    ("graph", "renamenode"): _shape(_GRAPH_CHANGE, _GRAPH_CHANGE),
    ("graph", "changenode"): _shape(("graph", "id", "metadata"), ("graph", "id", "metadata")),
    ("graph", "addedge"): _shape(("graph", "metadata", "src", "tgt"), ("graph", "src", "tgt")),
    ("graph", "removeedge"): _shape(("graph", "src", "tgt"), ("graph", "src", "tgt")),
    ("graph", "changeedge"): _shape(("graph", "metadata", "src", "tgt"), ("graph", "src", "tgt")),
    ("graph", "addinitial"): _shape(("graph", "metadata", "src", "tgt"), ("graph", "src", "tgt")),
    ("graph", "removeinitial"): _shape(("graph", "src", "tgt"), ("graph", "tgt")),
    **{
        ("graph", f"add{kind}"): _shape(
            ("graph", "metadata", "node", "port", "public"), ("graph", "node", "port", "public")
        )
        for kind in ("inport", "outport")
    },
    **{
        ("graph", f"remove{kind}"): _shape(("graph", "public"), ("graph", "public"))
        for kind in ("inport", "outport")
    },
    **{
        ("graph", f"rename{kind}"): _shape(_GRAPH_CHANGE, _GRAPH_CHANGE)
        for kind in ("inport", "outport", "group")
    },
    ("graph", "addgroup"): _shape(
        ("graph", "metadata", "name", "nodes"), ("graph", "name", "nodes")
    ),
    ("graph", "removegroup"): _shape(("graph", "name"), ("graph", "name")),
    ("graph", "changegroup"): _shape(("graph", "metadata", "name"), ("graph", "metadata", "name")),
    ("component", "error"): _ERROR,
    ("component", "component"): _shape(
        ("description", "icon", "inPorts", "name", "outPorts", "subgraph"),
        ("inPorts", "name", "outPorts", "subgraph"),
    ),
    ("component", "componentsready"): Shape(None),
    ("component", "source"): _shape(
        ("code", "language", "library", "name", "tests"), ("code", "language", "name")
    ),
    ("network", "stopped"): _shape(
        ("debug", "graph", "running", "started", "time", "uptime"), ("graph",)
    ),
    ("network", "started"): _shape(("debug", "graph", "running", "started", "time"), ("graph",)),
    ("network", "status"): _shape(
        ("debug", "graph", "running", "started", "uptime"), ("graph", "running")
    ),
    ("network", "output"): _shape(("message", "type", "url"), ("message",)),
    ("network", "error"): _shape(("graph", "message", "stack"), ("message",)),
    ("network", "processerror"): _shape(("error", "graph", "id"), ("error", "graph", "id")),
    ("network", "icon"): _shape(("graph", "icon", "id"), ("graph", "icon", "id")),
    ("network", "connect"): _shape(_PORT_EVENT, ("graph", "id", "tgt")),
    ("network", "disconnect"): _shape(_PORT_EVENT, ("graph", "id", "tgt")),
    ("network", "begingroup"): _shape((*_PORT_EVENT, "group"), ("graph", "group", "id", "tgt")),
    ("network", "endgroup"): _shape((*_PORT_EVENT, "group"), ("graph", "group", "id", "tgt")),
    ("network", "data"): _shape(
        (*_PORT_EVENT, "data", "type", "schema"), ("data", "graph", "id", "tgt")
    ),
    ("network", "edges"): _shape(("edges", "graph"), ("edges", "graph"), responds=False),
    ("network", "persist"): _shape(()),
    ("trace", "start"): _shape(("graph", "buffersize"), ("graph",)),
    ("trace", "stop"): _shape(("graph",), ("graph",)),
    ("trace", "clear"): _shape(("graph",), ("graph",)),
    ("trace", "dump"): _shape(("graph", "type", "flowtrace"), ("graph", "type", "flowtrace")),
    ("trace", "error"): _ERROR,
}
"""Every message the runtime may send. ``network:persist`` has no output schema in 0.9.8; its
acknowledgement is an empty payload, which every schema-less client accepts."""


def build(
    protocol: str, command: str, payload: Any, response_to: str | None = None
) -> dict[str, Any]:
    """The message ``protocol:command`` with only the fields its schema allows.

    A missing required field is a bug in the runtime, not in the client: it raises.
    """
    shape = OUTPUTS[(protocol, command)]
    if shape.fields is None:
        body: Any = payload
    else:
        assert isinstance(payload, Mapping)
        body = {
            k: v
            for k, v in payload.items()
            if k in shape.fields and (v is not None or k in _MAY_BE_NULL)
        }
        missing = shape.required - body.keys()
        if missing:
            raise ValueError(f"{protocol}:{command} lacks {', '.join(sorted(missing))}")
    message: dict[str, Any] = {"protocol": protocol, "command": command, "payload": body}
    if response_to is not None and shape.responds:
        message["responseTo"] = response_to
    return message


def error(protocol: str, message: str, response_to: str | None = None) -> dict[str, Any]:
    """``protocol:error``; a protocol without its own error reply answers as ``runtime``."""
    target = protocol if (protocol, "error") in OUTPUTS else "runtime"
    payload: ErrorPayload = {"message": message}
    return build(target, "error", payload, response_to)


class ProtocolError(errors.ProtocolError):
    """A request the runtime refuses; the message is what the client reads."""


def dumps(message: Mapping[str, Any]) -> str:
    """One text frame; data that is not JSON (bytes from a broker) is sent as its text."""
    return orjson.dumps(message, default=_fallback).decode("utf-8")


def _fallback(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
