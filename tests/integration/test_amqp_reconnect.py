"""The AMQP client survives a lost connection: it reconnects, re-subscribes, tells its listeners,
and loses nothing that was not acked or confirmed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from msgflo.testing.proxy import FaultProxy
from msgflo.transport import QueueKind, get_client
from msgflo.transport.base import Client, Message
from tests.integration.amqp_helpers import Inbox, url

pytestmark = pytest.mark.broker


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", 5672) as running:
        yield running


@pytest.fixture
async def direct(vhost: str) -> AsyncIterator[Client]:
    client = get_client(url(vhost))
    await client.connect()
    yield client
    await client.disconnect()


@pytest.fixture
async def flaky(vhost: str, proxy: FaultProxy) -> AsyncIterator[Client]:
    client = get_client(proxy.url("amqp", "guest:guest", f"/{vhost}"), connect_timeout=5)
    await client.connect()
    yield client
    await client.disconnect()


def reconnected(client: Client) -> asyncio.Event:
    event = asyncio.Event()

    async def listener() -> None:
        event.set()

    client.on_reconnect(listener)
    return event


async def test_unacked_message_is_redelivered_after_a_cut_and_consuming_resumes(
    direct: Client, flaky: Client, proxy: FaultProxy
) -> None:
    queue = f"{uuid.uuid4().hex[:8]}.IN"
    await direct.create_queue(QueueKind.IN, queue)
    back = reconnected(flaky)
    received: asyncio.Queue[Message] = asyncio.Queue()
    await flaky.subscribe_to_queue(queue, received.put)
    await direct.send_to(QueueKind.IN, queue, "first")
    async with asyncio.timeout(10):
        stale = await received.get()

    started = time.monotonic()
    proxy.cut()
    async with asyncio.timeout(10):
        await back.wait()
    assert time.monotonic() - started < 3
    await flaky.ack_message(stale)  # from the dead channel: silently dropped

    async with asyncio.timeout(10):
        again = await received.get()
    assert again.data == "first"
    await flaky.ack_message(again)
    await direct.send_to(QueueKind.IN, queue, "second")
    async with asyncio.timeout(10):
        after = await received.get()
    assert after.data == "second"
    await flaky.ack_message(after)


async def test_sends_during_an_outage_arrive_in_order_after_it(
    direct: Client, flaky: Client, proxy: FaultProxy
) -> None:
    queue = f"{uuid.uuid4().hex[:8]}.IN"
    await direct.create_queue(QueueKind.IN, queue)
    await flaky.create_queue(QueueKind.OUT, queue)
    inbox = Inbox(direct)
    await direct.subscribe_to_queue(queue, inbox)
    back = reconnected(flaky)

    proxy.block()
    for n in range(20):
        await flaky.send_to(QueueKind.OUT, queue, n)
    proxy.unblock()
    async with asyncio.timeout(15):
        await back.wait()
        await flaky.flush()
    assert [m.data for m in await inbox.take(20)] == list(range(20))


async def test_a_relay_cut_mid_stream_loses_no_message(
    direct: Client, flaky: Client, proxy: FaultProxy
) -> None:
    prefix = uuid.uuid4().hex[:8]
    source, sink = f"{prefix}.IN", f"{prefix}.OUT"
    await direct.create_queue(QueueKind.IN, source)
    await direct.create_queue(QueueKind.IN, sink)
    total = 400
    relayed = 0
    halfway = asyncio.Event()

    async def relay(message: Message) -> None:
        nonlocal relayed
        await flaky.send_raw(QueueKind.OUT, sink, message.body)
        await flaky.ack_message(message)
        relayed += 1
        if relayed == total // 3:
            halfway.set()

    seen: set[int] = set()
    everything = asyncio.Event()

    async def collect(message: Message) -> None:
        await direct.ack_message(message)
        seen.add(message.data)
        if len(seen) == total:
            everything.set()

    await direct.subscribe_to_queue(sink, collect)
    await flaky.subscribe_to_queue(source, relay)
    back = reconnected(flaky)
    for n in range(total):
        await direct.send_to(QueueKind.IN, source, n)
    async with asyncio.timeout(10):
        await halfway.wait()
    proxy.cut()
    async with asyncio.timeout(20):
        await back.wait()
        await everything.wait()
    assert seen == set(range(total))


async def test_disconnect_during_an_outage_returns_promptly(
    flaky: Client, proxy: FaultProxy
) -> None:
    proxy.block()
    await flaky.send_to(QueueKind.IN, "nowhere", "buffered")
    async with asyncio.timeout(10):
        await flaky.disconnect()
