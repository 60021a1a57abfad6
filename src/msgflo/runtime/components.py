"""Components as FBP clients see them: name, icon, description and typed ports.

Ports come from what a participant of the component announced (the truth on the wire), else
from a foreign declaration file or, for Python components, from the literals in their source
(read, never run); any other component nobody has run yet is listed without ports until its
first participant announces itself.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import orjson

from msgflo import deadletter
from msgflo.foreign import DeclarationError, load_declaration
from msgflo.library import Component, Library
from msgflo.runtime.protocol.payloads import ComponentPayload
from msgflo.source_definition import python_definition

PORT_FIELDS = ("schema", "required", "addressable", "description", "values", "default")
"""What a port definition may carry besides ``id`` and ``type`` (fbp-protocol port_definition)."""

GRAPH_LANGUAGES = frozenset({".fbp", ".json"})


def port_definitions(ports: Any) -> list[dict[str, Any]]:
    """Discovery ports (``id``, ``type``, ``queue``, extras) as protocol port definitions."""
    if not isinstance(ports, list):
        return []
    out = []
    for port in ports:
        if not isinstance(port, Mapping) or not isinstance(port.get("id"), str):
            continue
        definition: dict[str, Any] = {
            "id": port["id"],
            "type": port["type"] if isinstance(port.get("type"), str) else "any",
        }
        for key in PORT_FIELDS:
            value = port.get(key)
            if key == "schema" and isinstance(value, Mapping):
                value = schema_uri(value)
            if value is not None and _fits(key, value):
                definition[key] = value
        out.append(definition)
    return out


def schema_uri(schema: Mapping[str, Any]) -> str:
    """fbp-protocol wants a link to a port's schema: an inline one becomes a ``data:`` URI."""
    return "data:application/schema+json," + urllib.parse.quote(orjson.dumps(schema).decode())


def _fits(key: str, value: Any) -> bool:
    if key in ("required", "addressable"):
        return isinstance(value, bool)
    if key in ("schema", "description"):
        return isinstance(value, str)
    if key == "values":
        return isinstance(value, list)
    return True


def definition_of(component: Component, library: Library) -> dict[str, Any]:
    if component.definition is not None:
        return component.definition
    if component.path is not None and component.path.suffix in (".yml", ".yaml"):
        try:
            return load_declaration(library.root / component.path, role=component.path.stem)
        except (DeclarationError, OSError):
            return {}
    if component.path is not None and component.path.suffix == ".py":
        return python_definition(library.root / component.path)
    return {}


def component_payload(component: Component, library: Library) -> ComponentPayload:
    definition = definition_of(component, library)
    payload: ComponentPayload = {
        "name": component.name,
        "subgraph": component.path is not None and component.path.suffix in GRAPH_LANGUAGES,
        "inPorts": port_definitions(definition.get("inports")),
        "outPorts": port_definitions(definition.get("outports"))
        + port_definitions(deadletter.ports_of(definition)),
    }
    description = definition.get("description") or definition.get("label")
    if isinstance(description, str) and description:
        payload["description"] = description
    icon = definition.get("icon")
    if isinstance(icon, str) and icon:
        payload["icon"] = icon
    return payload
