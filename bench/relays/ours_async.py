"""Repeat written with the modern API (``async def process``); run by ``msgflo-python``.

Without ``BENCH_IN``/``BENCH_OUT`` its queues are the default ``ROLE.IN``/``ROLE.OUT``.
``BENCH_DELAY`` (seconds) makes each message take that long: a participant slower than its input.
``BENCH_SCHEMA=1`` gives its inport a JSON Schema of the load's messages (``ours-async-schema``).
"""

from __future__ import annotations

import asyncio
import os

from msgflo import Message, Participant

LOAD_SCHEMA = {
    "type": "object",
    "required": ["run", "seq", "t0", "body"],
    "properties": {
        "run": {"type": "integer"},
        "seq": {"type": "integer", "minimum": 0},
        "t0": {"type": "integer"},
        "body": {"type": "string"},
    },
}
"""The load generator's messages; ``BENCH_SCHEMA=1`` checks every input against it."""

_inport: dict[str, object] = {"queue": os.environ["BENCH_IN"]} if "BENCH_IN" in os.environ else {}
if os.environ.get("BENCH_SCHEMA"):
    _inport["schema"] = LOAD_SCHEMA


class Repeat(Participant):
    """Repeats its input."""

    inports = {"in": _inport} if _inport else None
    outports = {"out": {"queue": os.environ["BENCH_OUT"]}} if "BENCH_OUT" in os.environ else None

    delay = float(os.environ.get("BENCH_DELAY", "0"))

    async def process(self, inport: str, msg: Message) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        await self.send("out", msg.data)
