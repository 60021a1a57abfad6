"""Many idle Repeat participants in one process (roles n0 … n{N-1}, default queues), so that a
coordinator can be timed wiring a large graph of participants that are already running.

Usage: python host.py COUNT BROKER_URL
"""

from __future__ import annotations

import asyncio
import sys

from msgflo import Message, Participant
from msgflo.runner import serve


class Repeat(Participant):
    """Repeats its input."""

    async def process(self, inport: str, msg: Message) -> None:
        await self.send("out", msg.data)


if __name__ == "__main__":
    count, url = int(sys.argv[1]), sys.argv[2]
    asyncio.run(serve([Repeat(f"n{i}") for i in range(count)], url))
