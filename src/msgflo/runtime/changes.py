"""Graph-model events as the ``graph:*`` messages that tell FBP clients of each change."""

from __future__ import annotations

from typing import Any

from msgflo.graph import Edge, ExportedPort, GraphEvent, Group, Initial, Node
from msgflo.runtime.ports import port_json
from msgflo.runtime.protocol.payloads import EdgePayload, InitialPayload


def graph_change(graph_id: str, event: GraphEvent) -> tuple[str, dict[str, Any]] | None:
    """The ``graph:*`` message for a model event; ``None`` for changes the protocol has no
    message for (exported-port metadata, graph properties). Payloads may hold more than a
    command allows: :func:`build` keeps what its schema names."""
    subject = event.subject
    kind = event.kind
    if isinstance(subject, Node):
        if kind == "add_node":
            return "addnode", {
                "id": subject.name,
                "component": subject.component or "",
                "metadata": subject.metadata,
            }
        if kind == "remove_node":
            return "removenode", {"id": subject.name}
        if kind == "rename_node":
            return "renamenode", {"from": event.old, "to": subject.name}
        return "changenode", {"id": subject.name, "metadata": subject.metadata}
    if isinstance(subject, Edge):
        edge: EdgePayload = {
            "src": port_json(subject.src),
            "tgt": port_json(subject.tgt),
            "metadata": subject.metadata,
        }
        return kind.replace("_", ""), dict(edge)
    if isinstance(subject, Initial):
        initial: InitialPayload = {
            "src": {"data": subject.data},
            "tgt": port_json(subject.tgt),
            "metadata": subject.metadata,
        }
        return kind.replace("_", ""), dict(initial)
    if isinstance(subject, ExportedPort):
        if kind.startswith("change_"):
            return None
        if kind.startswith("rename_"):
            return kind.replace("_", ""), {"from": event.old, "to": subject.public}
        payload: dict[str, Any] = {
            "public": subject.public,
            "node": subject.node,
            "port": subject.port,
        }
        if subject.metadata:
            payload["metadata"] = subject.metadata
        return kind.replace("_", ""), payload  # build() keeps what each command allows
    if isinstance(subject, Group):
        if kind == "rename_group":
            return "renamegroup", {"from": event.old, "to": subject.name}
        if kind == "add_group":
            return "addgroup", {
                "name": subject.name,
                "nodes": subject.nodes,
                "metadata": subject.metadata,
            }
        if kind == "remove_group":
            return "removegroup", {"name": subject.name}
        return "changegroup", {"name": subject.name, "metadata": subject.metadata}
    return None
