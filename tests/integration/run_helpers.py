"""Run the real ``msgflo`` command in a project directory and follow what it prints."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from msgflo.transport import Binding, Broker, Message, QueueKind, get_broker
from tests.integration.processes import Output

BIN = Path(sys.executable).parent
UPPER = """
import msgflo

class Upper(msgflo.Participant):
    component = "Upper"
    inports = {"in": "string"}
    outports = {"out": "string"}

    async def process(self, port, msg):
        await self.send("out", str(msg.data).upper())
"""


class Msgflo(Output):
    """A running ``msgflo``; every line it prints is kept and can be awaited."""

    def pids(self) -> dict[str, list[int]]:
        """The children msgflo reported starting, by role."""
        result: dict[str, list[int]] = {}
        for line in self.lines:
            if match := re.search(r"msgflo: (\S+): started pid (\d+)", line):
                result.setdefault(match[1], []).append(int(match[2]))
        return result

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 30)
        await asyncio.gather(*self._readers)
        return code


@contextlib.asynccontextmanager
async def run_msgflo(project: Path, *args: str, broker: str | None) -> AsyncIterator[Msgflo]:
    env = {k: v for k, v in os.environ.items() if k not in ("MSGFLO_BROKER", "CLOUDAMQP_URL")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    argv = [str(BIN / "msgflo"), *args] + (["--broker", broker] if broker else [])
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=project,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Msgflo(process)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


class Sink:
    """Receives what a participant publishes on an outqueue, through a binding of our own."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.received: asyncio.Queue[Any] = asyncio.Queue()

    @classmethod
    async def on(cls, url: str, outqueue: str) -> Sink:
        sink = cls(get_broker(url))
        await sink.broker.connect()
        observer = f"{outqueue}.observer"
        await sink.broker.create_queue(QueueKind.OUT, outqueue)
        await sink.broker.create_queue(QueueKind.IN, observer)
        await sink.broker.add_binding(Binding(outqueue, observer))
        await sink.broker.subscribe_to_queue(observer, sink._keep)
        return sink

    async def _keep(self, message: Message) -> None:
        self.received.put_nowait(message.data)
        await self.broker.ack_message(message)

    async def get(self, timeout: float = 30.0) -> Any:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def close(self) -> None:
        await self.broker.disconnect()
