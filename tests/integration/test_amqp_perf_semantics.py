"""What the fast AMQP paths must keep: acks after confirms, order, flush, exact frames.

Publishes and acks are written in batches, deliveries and confirms handled as they are read;
these tests watch the frames on the wire (through a recording proxy) and the queues from the
outside, so they hold for any implementation.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pamqp.frame
import pytest
from pamqp import commands as spec

from msgflo.transport import QueueKind, get_client
from msgflo.transport.amqp import AmqpClient
from msgflo.transport.base import Message
from tests.integration.amqp_helpers import PausingProxy, Rabbit, poll, url

pytestmark = pytest.mark.broker

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


@pytest.fixture
async def connect(vhost: str) -> AsyncIterator[Callable[..., Any]]:
    opened: list[AmqpClient] = []

    async def open_client(port: int = 5672) -> AmqpClient:
        client = get_client(url(vhost, port))
        assert isinstance(client, AmqpClient)
        await client.connect()
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.disconnect()


@dataclass
class FrameLog:
    """Parses one direction of an AMQP stream into ``(direction, channel, frame)`` events."""

    direction: str
    events: list[tuple[str, int, Any]]
    buffer: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        if self.buffer.startswith(PROTOCOL_HEADER):
            del self.buffer[: len(PROTOCOL_HEADER)]
        while len(self.buffer) >= 7:
            (size,) = struct.unpack_from(">I", self.buffer, 3)
            if len(self.buffer) < size + 8:
                return
            _, channel, frame = pamqp.frame.unmarshal(bytes(self.buffer[: size + 8]))
            del self.buffer[: size + 8]
            self.events.append((self.direction, channel, frame))


class _Tap:
    """A stream reader that shows every chunk to a frame log before handing it on."""

    def __init__(self, reader: asyncio.StreamReader, log: FrameLog) -> None:
        self.reader = reader
        self.log = log

    async def read(self, n: int) -> bytes:
        chunk = await self.reader.read(n)
        self.log.feed(chunk)
        return chunk


class RecordingProxy(PausingProxy):
    """Records the frames of both directions in the order the proxy sees them.

    A frame from the broker is logged when the proxy reads it, before the client can have it, so
    a client frame logged earlier was certainly sent without knowing of it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, int, Any]] = []

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, gate: asyncio.Event | None
    ) -> None:
        log = FrameLog("up" if gate is None else "down", self.events)
        await super()._pipe(_Tap(src, log), dst, gate)  # type: ignore[arg-type]


def check_acks_follow_confirms(events: list[tuple[str, int, Any]]) -> int:
    """For a relay that publishes once per delivery: publish k belongs to delivery tag k, so
    the ack of delivery d may only leave after the broker confirmed publishes 1..d.  Returns
    how many ack frames the client sent."""
    confirmed: set[int] = set()
    prefix = 0
    acks = 0
    for direction, _channel, frame in events:
        if direction == "down" and isinstance(frame, spec.Basic.Ack):
            if frame.multiple:
                confirmed.update(range(prefix + 1, frame.delivery_tag + 1))
            else:
                confirmed.add(frame.delivery_tag)
            while prefix + 1 in confirmed:
                prefix += 1
        elif direction == "up" and isinstance(frame, spec.Basic.Ack):
            acks += 1
            assert frame.delivery_tag <= prefix, (
                f"ack of delivery {frame.delivery_tag} sent when only publishes 1..{prefix} "
                "were confirmed"
            )
    return acks


async def test_acks_never_overtake_confirms_under_load_and_are_coalesced(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    count = 3000
    source, result = name("IN"), name("OUT")
    loader = await connect()
    for queue in (source, result):
        await loader.create_queue(QueueKind.IN, queue)
    for n in range(count):
        await loader.send_to(QueueKind.IN, source, n)
    await loader.flush()
    async with RecordingProxy().running() as proxy:
        relay = await connect(proxy.port)
        done = asyncio.Event()
        handled = 0

        async def process(message: Message) -> None:
            nonlocal handled
            await relay.send_raw(QueueKind.IN, result, message.body)
            await relay.ack_message(message)
            handled += 1
            if handled == count:
                done.set()

        await relay.subscribe_to_queue(source, process)
        async with asyncio.timeout(20):
            await done.wait()
        await relay.flush()

        async def all_acked() -> bool:
            return any(
                d == "up" and isinstance(f, spec.Basic.Ack) and f.delivery_tag == count
                for d, _, f in proxy.events
            )

        await poll(all_acked)
        acks = check_acks_follow_confirms(proxy.events)
    assert acks < count / 2, f"{acks} ack frames for {count} deliveries: acks are not coalesced"
    assert await rabbit.ready(source) == 0
    assert await rabbit.get_all(result) == [str(n).encode() for n in range(count)]


async def test_a_burst_is_confirmed_in_order_and_flush_returns(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    """More publishes than may be unconfirmed at once: sends wait for room, none is lost."""
    count = 5000
    client = await connect()
    queue = name("IN")
    await client.create_queue(QueueKind.IN, queue)
    async with asyncio.timeout(20):
        for n in range(count):
            await client.send_to(QueueKind.IN, queue, n)
        await client.flush()
    assert await rabbit.ready(queue) == count
    assert await rabbit.get_all(queue) == [str(n).encode() for n in range(count)]


async def test_coalesced_acks_of_one_queue_never_settle_another_queues_deliveries(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str]
) -> None:
    """Two subscriptions share the channel, so their delivery tags interleave: a ``multiple``
    ack for the fast queue must not cover the slow queue's deliveries, which are then nacked."""
    count = 300
    fast, slow = name("FAST"), name("SLOW")
    client = await connect()
    for queue in (fast, slow, f"dead-{slow}"):
        await client.create_queue(QueueKind.IN, queue)
    for n in range(count):
        await client.send_to(QueueKind.IN, fast, n)
        await client.send_to(QueueKind.IN, slow, n)
    await client.flush()
    fast_done, slow_done = asyncio.Event(), asyncio.Event()
    seen = {fast: 0, slow: 0}

    async def process(message: Message) -> None:
        if message.queue == slow:
            await fast_done.wait()
            await client.nack_message(message)
        else:
            await client.ack_message(message)
        seen[message.queue] += 1
        if seen[message.queue] == count:
            (fast_done if message.queue == fast else slow_done).set()

    await client.subscribe_to_queue(fast, process)
    await client.subscribe_to_queue(slow, process)
    async with asyncio.timeout(20):
        await slow_done.wait()
    await rabbit.wait_ready(f"dead-{slow}", count)
    assert await rabbit.get_all(f"dead-{slow}") == [str(n).encode() for n in range(count)]
    assert await rabbit.ready(fast) == await rabbit.ready(slow) == 0


@pytest.mark.parametrize("extra", [-1, 0, 1, 128 * 1024 + 3])
async def test_bodies_around_the_frame_size_arrive_whole_with_only_delivery_mode_set(
    connect: Callable[..., Any], rabbit: Rabbit, name: Callable[[str], str], extra: int
) -> None:
    """Bodies are split into frames of at most frame_max - 8 octets, as aiormq splits them."""
    client = await connect()
    queue = name("IN")
    await client.create_queue(QueueKind.IN, queue)
    session = client._session
    assert session is not None
    size = session.amqp.connection_tune.frame_max - 8 + extra
    bodies = [b"", bytes(range(256)) * (size // 256) + b"z" * (size % 256)]
    for body in bodies:
        await client.send_raw(QueueKind.IN, queue, body)
    await client.flush()
    channel = await rabbit.channel()
    for body in bodies:
        message = await channel.basic_get(queue, no_ack=True)
        assert message.body == body
        assert message.header.properties == spec.Basic.Properties(delivery_mode=1)
