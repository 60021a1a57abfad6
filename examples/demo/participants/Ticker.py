"""A source: once configured with an interval, sends a line of text at that pace."""

from __future__ import annotations

import asyncio
import itertools
import random

import msgflo

LINES = [
    "flow based programming over message queues",
    "every node is a process",
    "the broker carries the packets",
    "participants announce themselves",
    "the coordinator wires what it discovers",
]


class Ticker(msgflo.Participant):
    """Sends a line of text every INTERVAL seconds"""

    component = "Ticker"
    inports = {"interval": "number"}
    outports = {"out": "string"}

    def __init__(self, role: str) -> None:
        super().__init__(role)
        self.interval = 1.0
        self._ticking: asyncio.Task[None] | None = None

    async def process(self, port: str, msg: msgflo.Message) -> None:
        self.interval = max(float(msg.data), 0.05)
        if self._ticking is None:
            self._ticking = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        for n in itertools.count(1):
            await self.send("out", f"#{n} {random.choice(LINES)}")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._ticking is not None:
            self._ticking.cancel()
        await super().stop()


if __name__ == "__main__":
    msgflo.run(Ticker)
