"""What the coordinator tells its listeners (the runtime, the command line, tests).

Every event carries a finished line a person can read, so that a listener that only prints
needs no knowledge of the kinds; the kind and ``data`` are for listeners that act on them.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from msgflo.errors import NetworkError

log = logging.getLogger(__name__)


class CoordinatorError(NetworkError):
    """A graph operation that cannot be done; the message names the node, port or edge."""


class EventKind(enum.StrEnum):
    PARTICIPANT_ADDED = "participant-added"
    PARTICIPANT_UPDATED = "participant-updated"
    PARTICIPANT_GONE = "participant-gone"
    PARTICIPANT_BACK = "participant-back"
    WIRED = "wired"
    UNWIRED = "unwired"
    IIP_SENT = "iip-sent"
    PROCESS_STARTED = "process-started"
    PROCESS_READY = "process-ready"
    PROCESS_EXITED = "process-exited"
    OUTPUT = "output"
    DATA = "data"
    GRAPH_CHANGED = "graph-changed"
    AUTOSCALE = "autoscale"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Event:
    """What listeners get; ``message`` is a finished line a person can read."""

    kind: EventKind
    role: str = ""
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


class Events:
    """The listeners of one coordinator; a failing listener never stops the others."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._warned: set[str] = set()

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("coordinator listener failed on %s", event.kind)

    def warn_once(
        self, key: str, message: str, kind: EventKind = EventKind.WARNING, role: str = ""
    ) -> None:
        """A condition that repeats on every re-plan is reported the first time only."""
        if key not in self._warned:
            self._warned.add(key)
            self.emit(Event(kind, role, message))
