"""Repeat written with the modern API (``async def process``); run by ``msgflo-python``.

Without ``BENCH_IN``/``BENCH_OUT`` its queues are the default ``ROLE.IN``/``ROLE.OUT``.
``BENCH_DELAY`` (seconds) makes each message take that long: a participant slower than its input.
"""

from __future__ import annotations

import asyncio
import os

from msgflo import Message, Participant


class Repeat(Participant):
    """Repeats its input."""

    inports = {"in": {"queue": os.environ["BENCH_IN"]}} if "BENCH_IN" in os.environ else None
    outports = {"out": {"queue": os.environ["BENCH_OUT"]}} if "BENCH_OUT" in os.environ else None

    delay = float(os.environ.get("BENCH_DELAY", "0"))

    async def process(self, inport: str, msg: Message) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        await self.send("out", msg.data)
