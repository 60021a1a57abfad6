"""Test tools for the AMQP transport: a private vhost, raw checks against RabbitMQ, a pausing proxy.

Checks go through a separate aiormq connection (or rabbitmqctl for what AMQP cannot tell, such as
unacknowledged counts), never through the client under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Self

import aiormq
import aiormq.exceptions

from msgflo.transport.base import Message

RABBIT_HOST = "127.0.0.1"
RABBIT_PORT = 5672


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


@contextlib.contextmanager
def private_vhost() -> Iterator[str]:
    """A vhost of our own: the shared ``fbp`` queue and every name in it are ours alone."""
    vhost = f"msgflo-test-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield vhost
    finally:
        rabbitmqctl("delete_vhost", vhost)


def url(vhost: str, port: int = RABBIT_PORT, query: str = "") -> str:
    suffix = f"?{query}" if query else ""
    return f"amqp://guest:guest@{RABBIT_HOST}:{port}/{vhost}{suffix}"


class Rabbit:
    """Looks at the broker from the outside, through its own connection."""

    def __init__(self, vhost: str) -> None:
        self.vhost = vhost
        self.url = url(vhost)
        self._connection: aiormq.abc.AbstractConnection | None = None

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def channel(self) -> aiormq.abc.AbstractChannel:
        """A fresh channel each time: a refused declaration closes the channel it ran on."""
        if self._connection is None:
            self._connection = await aiormq.connect(self.url)
        return await self._connection.channel()

    async def redeclare_ok(self, declare: str, name: str, **flags: Any) -> bool:
        """Whether declaring ``name`` again with ``flags`` is accepted (no 406)."""
        channel = await self.channel()
        try:
            if declare == "queue":
                await channel.queue_declare(name, **flags)
            else:
                await channel.exchange_declare(name, **flags)
        except aiormq.exceptions.ChannelPreconditionFailed:
            return False
        await channel.close()
        return True

    async def exists(self, declare: str, name: str) -> bool:
        channel = await self.channel()
        try:
            if declare == "queue":
                await channel.queue_declare(name, passive=True)
            else:
                await channel.exchange_declare(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        await channel.close()
        return True

    async def ready(self, queue: str) -> int:
        channel = await self.channel()
        ok = await channel.queue_declare(queue, passive=True)
        await channel.close()
        assert ok.message_count is not None
        return ok.message_count

    async def wait_ready(self, queue: str, count: int) -> None:
        async def deep_enough() -> bool:
            return await self.ready(queue) >= count

        await poll(deep_enough)

    async def get_all(self, queue: str) -> list[bytes]:
        channel = await self.channel()
        bodies = []
        while True:
            message = await channel.basic_get(queue, no_ack=True)
            if message.delivery_tag is None:
                break
            bodies.append(message.body)
        await channel.close()
        return bodies

    def queues(self) -> dict[str, dict[str, Any]]:
        out = rabbitmqctl(
            "list_queues", "-p", self.vhost, "name", "durable", "auto_delete", "exclusive",
            "arguments", "messages_unacknowledged", "--formatter", "json",
        )  # fmt: skip
        rows = json.loads(out)
        for row in rows:  # rabbitmqctl renders a table as [key, type, value] rows
            row["arguments"] = {key: value for key, _type, value in row["arguments"]}
        return {row["name"]: row for row in rows}

    def exchanges(self) -> dict[str, dict[str, Any]]:
        out = rabbitmqctl(
            "list_exchanges", "-p", self.vhost, "name", "type", "durable", "auto_delete",
            "--formatter", "json",
        )  # fmt: skip
        return {row["name"]: row for row in json.loads(out)}

    def bindings_from(self, exchange: str) -> set[str]:
        """Queues bound to ``exchange``."""
        return {dest for source, kind, dest in self.bindings() if source == exchange}

    def bindings(self) -> set[tuple[str, str, str]]:
        """(source exchange, destination kind, destination) for every non-default binding."""
        out = rabbitmqctl(
            "list_bindings", "-p", self.vhost, "source_name", "destination_kind",
            "destination_name", "--formatter", "json",
        )  # fmt: skip
        return {
            (row["source_name"], row["destination_kind"], row["destination_name"])
            for row in json.loads(out)
            if row["source_name"]
        }


async def poll(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Broker-side state (queue depths, unacked counts) has no event to await: poll, bounded."""
    async with asyncio.timeout(timeout):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


class Inbox:
    """Collects what a subscription receives, acking each message unless told otherwise."""

    def __init__(self, client: Any = None) -> None:
        self.client = client
        self.messages: asyncio.Queue[Message] = asyncio.Queue()

    async def __call__(self, message: Message) -> None:
        if self.client is not None:
            await self.client.ack_message(message)
        self.messages.put_nowait(message)

    async def take(self, count: int, timeout: float = 10.0) -> list[Message]:
        async with asyncio.timeout(timeout):
            return [await self.messages.get() for _ in range(count)]


class PausingProxy:
    """A TCP proxy whose broker-to-client direction can be held, to delay confirms."""

    def __init__(self, port: int = RABBIT_PORT) -> None:
        self.target = port
        self.port = 0
        self._downstream = asyncio.Event()
        self._downstream.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def hold(self) -> None:
        self._downstream.clear()

    def release(self) -> None:
        self._downstream.set()

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, gate: asyncio.Event | None
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await src.read(65536):
                if gate is not None:
                    await gate.wait()
                dst.write(chunk)
                await dst.drain()
        dst.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(RABBIT_HOST, self.target)
        for task in (
            asyncio.create_task(self._pipe(reader, up_writer, None)),
            asyncio.create_task(self._pipe(up_reader, writer, self._downstream)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        self._server = await asyncio.start_server(self._accept, RABBIT_HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self.release()
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
