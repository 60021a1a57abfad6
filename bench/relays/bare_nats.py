"""The limit for a Python NATS relay: nats-py and nothing else (core NATS, no JSON decoding).

Usage: python bare_nats.py URL IN_SUBJECT OUT_SUBJECT
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import nats
from nats.aio.msg import Msg


async def relay(url: str, inbound: str, outbound: str) -> None:
    nc = await nats.connect(url)

    async def forward(msg: Msg) -> None:
        await nc.publish(outbound, msg.data)

    await nc.subscribe(inbound, queue=inbound, cb=forward)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(relay(sys.argv[1], sys.argv[2], sys.argv[3]))
