"""Repeat written with the modern API (``async def process``); run by ``msgflo-python``.

Without ``BENCH_IN``/``BENCH_OUT`` its queues are the default ``ROLE.IN``/``ROLE.OUT``.
"""

from __future__ import annotations

import os

from msgflo import Message, Participant


class Repeat(Participant):
    """Repeats its input."""

    inports = {"in": {"queue": os.environ["BENCH_IN"]}} if "BENCH_IN" in os.environ else None
    outports = {"out": {"queue": os.environ["BENCH_OUT"]}} if "BENCH_OUT" in os.environ else None

    async def process(self, inport: str, msg: Message) -> None:
        await self.send("out", msg.data)
