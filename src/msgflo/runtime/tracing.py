"""Flowtrace recording: each graph's network events, kept for ``trace:dump``."""

from __future__ import annotations

import datetime
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from msgflo.runtime.protocol.messages import build

TRACE_BUFFERSIZE = 10_000
"""Events a trace keeps when ``trace:start`` names no ``buffersize``."""


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Trace:
    """Flowtrace recording of one graph's network events: the newest ``buffersize`` of them,
    so a trace left running on a busy network holds a bounded amount of memory."""

    enabled: bool = False
    buffersize: int | None = None
    started: str = ""
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRACE_BUFFERSIZE))

    def start(self, buffersize: int | None) -> None:
        self.enabled, self.buffersize = True, buffersize
        size = buffersize if buffersize and buffersize > 0 else TRACE_BUFFERSIZE
        self.events = deque(self.events, maxlen=size)

    def record(self, graph: str, protocol: str, command: str, payload: Any) -> None:
        """Keep the payload as clients received it (only the fields its schema names)."""
        if not self.enabled:
            return
        self.events.append(
            {
                "protocol": protocol,
                "command": command,
                "payload": build(protocol, command, payload)["payload"],
                "graph": graph,
                "time": now_iso(),
            }
        )
