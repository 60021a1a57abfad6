"""Change events of the graph model: what a graph tells its listeners after each edit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GraphEvent:
    """What changed: `kind` names the operation (e.g. "add_node"), `subject` is the object
    after the change (or the removed one), `old` carries the previous name or value."""

    kind: str
    subject: Any
    old: Any = None


Listener = Callable[[GraphEvent], None]


class GraphEvents:
    """The listeners of one graph, told of each change in the order the edits made them."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register a listener; the returned function unregisters it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, kind: str, subject: Any, old: Any = None) -> None:
        event = GraphEvent(kind, subject, old)
        for listener in list(self._listeners):
            listener(event)
