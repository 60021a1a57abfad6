"""Foreign participant declarations: discovery for programs that do not speak msgflo.

A declaration (YAML or JSON) says which queues a program reads and writes; registering it makes
the coordinator see that program as an ordinary participant.  Ports may be a map
``{portId: {queue, type, description}}`` or a list ``[{id, queue, type}]``; the original turned
the list form into ports named ``"0"``, ``"1"``...  ``#ROLE`` in a queue name becomes the role,
and the participant's id is the role unless the declaration sets one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from msgflo.definition import normalize_definition
from msgflo.errors import LibraryError


class DeclarationError(LibraryError):
    """What is wrong with a declaration, in one line naming the file and the field."""


TEXT_FIELDS = ("component", "label", "icon", "role", "id")


def read_declaration(path: Path) -> dict[str, Any]:
    """The raw mapping in ``path``: JSON for ``.json`` files, YAML otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeclarationError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        detail = " ".join(str(exc).split())
        raise DeclarationError(f"{path}: not valid {kind}: {detail}") from exc
    if raw is None:
        raise DeclarationError(f"{path}: no declaration found (the file is empty)")
    if not isinstance(raw, dict):
        raise DeclarationError(f"{path}: must be a mapping with at least 'component'")
    return raw


def _ports(value: Any, where: str, kind: str, role: str) -> list[dict[str, Any]]:
    """Ports as a list with ids, ``#ROLE`` replaced in their queues, each field checked."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        entries = [
            (f"{kind}.{port_id}", {"id": str(port_id), **_port_fields(props, where, kind, port_id)})
            for port_id, props in value.items()
        ]
    elif isinstance(value, list):
        entries = []
        for index, props in enumerate(value):
            field = f"{kind}[{index}]"
            if not isinstance(props, Mapping):
                raise DeclarationError(f"{where}: '{field}' must be a mapping with 'id'")
            if not isinstance(props.get("id"), str) or not props["id"]:
                raise DeclarationError(f"{where}: '{field}.id' must be a non-empty string")
            entries.append((f"{kind}.{props['id']}", dict(props)))
    else:
        raise DeclarationError(f"{where}: '{kind}' must be a map of port id to port or a list")
    ports = []
    for field, port in entries:
        for key in ("queue", "type", "description"):
            if key in port and not isinstance(port[key], str):
                raise DeclarationError(f"{where}: '{field}.{key}' must be a string")
        if "queue" in port:
            port["queue"] = port["queue"].replace("#ROLE", role)
        ports.append(port)
    return ports


def _port_fields(props: Any, where: str, kind: str, port_id: Any) -> dict[str, Any]:
    if props is None:
        return {}
    if isinstance(props, str):
        return {"type": props}
    if not isinstance(props, Mapping):
        raise DeclarationError(f"{where}: '{kind}.{port_id}' must be a mapping of port fields")
    return dict(props)


def declaration_to_definition(
    raw: Mapping[str, Any], role: str | None = None, where: str = "declaration"
) -> dict[str, Any]:
    """The discovery payload for ``raw`` under ``role`` (which overrides the declared role)."""
    for key in TEXT_FIELDS:
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            raise DeclarationError(f"{where}: '{key}' must be a string")
    if not raw.get("component"):
        raise DeclarationError(f"{where}: 'component' is missing")
    role = role or raw.get("role")
    if not role:
        raise DeclarationError(
            f"{where}: 'role' is not defined for component {raw['component']!r} (give one)"
        )
    definition = dict(raw)
    definition["id"] = raw.get("id") or role
    for kind in ("inports", "outports"):
        definition[kind] = _ports(raw.get(kind), where, kind, role)
    return normalize_definition(definition, role)


def load_declaration(path: Path, role: str | None = None) -> dict[str, Any]:
    """Read and validate the declaration in ``path`` as the discovery payload for ``role``."""
    return declaration_to_definition(read_declaration(path), role, str(path))
