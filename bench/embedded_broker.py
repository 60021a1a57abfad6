"""The embedded broker (amqtt, as ``msgflo`` runs it) in a process of its own: prints its URL
once it listens and runs until SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from msgflo.broker import embedded_broker


async def serve() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with embedded_broker() as url:
        print(url, flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve())
