"""Shared pieces of the MQTT transport tests: unique topics and awaiting deliveries."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from msgflo.transport import Binding, Message

WAIT = 10.0
"""Upper bound for anything that should arrive; a broken transport fails instead of hanging."""

QUIET = 0.3
"""How long to watch for a message that must NOT come, after a marker proved the path is live."""


def topics(*names: str) -> list[str]:
    prefix = f"msgflo-test-{uuid.uuid4().hex[:10]}"
    return [f"{prefix}/{name}" for name in names]


class Inbox:
    """Collects deliveries; tests await a count instead of sleeping."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.data: list[tuple[Binding, Any]] = []
        self._changed = asyncio.Event()

    async def handler(self, message: Message) -> None:
        self.messages.append(message)
        self._changed.set()

    async def data_handler(self, binding: Binding, data: Any) -> None:
        self.data.append((binding, data))
        self._changed.set()

    @property
    def bodies(self) -> list[bytes]:
        return [m.body for m in self.messages]

    async def wait_for(self, count: int, timeout: float = WAIT) -> None:
        async def reached() -> None:
            while len(self.messages) + len(self.data) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(reached(), timeout)
