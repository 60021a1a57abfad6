"""What the NATS transport does beyond the conformance suite: JetStream keeps messages for
consumers that are not there yet and resumes a durable consumer; cuts (through FaultProxy) are
survived, on JetStream without a loss; bad input is one clear line."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import nats as nats_py
import pytest

from msgflo.testing.proxy import FaultProxy
from msgflo.transport import Message, QueueKind, TransportError, get_client
from msgflo.transport.nats import NatsClient
from tests.brokers import NATS, NATS_JETSTREAM, listening, require_broker
from tests.external.fbp_runtime_helpers import free_port

pytestmark = pytest.mark.broker
WAIT = 15.0


class Inbox:
    def __init__(self, client: NatsClient) -> None:
        self.client = client
        self.messages: asyncio.Queue[Message] = asyncio.Queue()

    async def handler(self, message: Message) -> None:
        self.messages.put_nowait(message)
        await self.client.ack_message(message)

    async def get(self) -> object:
        return (await asyncio.wait_for(self.messages.get(), WAIT)).data


def nats(url: str, **kw: float) -> NatsClient:
    client = get_client(url, **kw)
    assert isinstance(client, NatsClient)
    return client


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    require_broker(4222, "NATS")
    async with FaultProxy("127.0.0.1", 4222) as p:
        yield p


@pytest.fixture
async def cleanup() -> AsyncIterator[list[str]]:
    """JetStream queues a test declared, removed afterwards (streams outlive clients)."""
    queues: list[str] = []
    yield queues
    async with nats(NATS_JETSTREAM) as client:
        for queue in queues:
            await client.remove_queue(QueueKind.IN, queue)


async def test_jetstream_keeps_messages_until_a_durable_consumer_takes_them(
    prefix: str, cleanup: list[str]
) -> None:
    require_broker(4222, "NATS")
    q = f"{prefix}.IN"
    cleanup.append(q)
    async with nats(NATS_JETSTREAM) as sender:
        await sender.create_queue(QueueKind.IN, q)
        await sender.send_to(QueueKind.IN, q, "before anyone listened")
        await sender.flush()
        async with nats(NATS_JETSTREAM) as first:
            inbox = Inbox(first)
            await first.subscribe_to_queue(q, inbox.handler)
            assert await inbox.get() == "before anyone listened"
        await sender.send_to(QueueKind.IN, q, "while the consumer was away")
        await sender.flush()
        async with nats(NATS_JETSTREAM) as second:
            inbox = Inbox(second)
            await second.subscribe_to_queue(q, inbox.handler)
            assert await inbox.get() == "while the consumer was away"


async def test_core_client_reconnects_resubscribes_and_announces(proxy: FaultProxy) -> None:
    mine = f"nats-reconnect-{proxy.port}.IN"
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    async with nats(proxy.url("nats"), connect_timeout=5) as client, nats(NATS) as direct:
        inbox = Inbox(client)
        client.on_reconnect(on_reconnect)
        await client.subscribe_to_queue(mine, inbox.handler)
        proxy.cut()
        await asyncio.wait_for(client.wait_disconnected(), WAIT)
        await asyncio.wait_for(reconnected.wait(), WAIT)
        await direct.send_to(QueueKind.OUT, mine, "after the cut")
        assert await inbox.get() == "after the cut"
        assert proxy.connections == 2


async def test_jetstream_loses_nothing_through_cuts(
    proxy: FaultProxy, prefix: str, cleanup: list[str]
) -> None:
    q = f"{prefix}.IN"
    cleanup.append(q)
    total = 2000
    url = proxy.url("nats", suffix="?jetstream=1&ack_wait=2")
    async with nats(url, connect_timeout=5) as sender, nats(url, connect_timeout=5) as worker:
        seen: set[int] = set()
        everything = asyncio.Event()

        async def take(message: Message) -> None:
            seen.add(message.data)
            await worker.ack_message(message)
            if len(seen) == total:
                everything.set()

        await worker.create_queue(QueueKind.IN, q)
        await worker.subscribe_to_queue(q, take)
        await sender.create_queue(QueueKind.IN, q)
        for i in range(total):
            await sender.send_to(QueueKind.IN, q, i)
            if i in (500, 1200):
                proxy.cut()
        await asyncio.wait_for(sender.flush(), 60)
        await asyncio.wait_for(everything.wait(), 60)
        assert seen == set(range(total))
        assert proxy.connections >= 4


async def test_unreachable_server_is_one_line_with_the_url_redacted() -> None:
    client = nats(f"nats://me:secret@127.0.0.1:{free_port()}", connect_timeout=5)
    with pytest.raises(TransportError) as failure:
        await client.connect()
    text = str(failure.value)
    assert "\n" not in text and "secret" not in text
    assert text.startswith("cannot connect to nats://me:***@127.0.0.1:")
    assert "refused" in text.lower()


@pytest.fixture
def guarded_server() -> Iterator[int]:
    """A throwaway nats-server that wants a password (the shared one wants none)."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = free_port()
    with subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "--user", "msgflo", "--pass", "right"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as server:
        try:
            for _ in range(100):
                if listening(port):
                    break
                time.sleep(0.05)
            yield port
        finally:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(5)


async def test_wrong_password_fails_at_once_naming_the_cause(guarded_server: int) -> None:
    client = nats(f"nats://msgflo:wrong@127.0.0.1:{guarded_server}", connect_timeout=20)
    started = asyncio.get_running_loop().time()
    with pytest.raises(TransportError) as failure:
        await client.connect()
    assert asyncio.get_running_loop().time() - started < 5, "no retrying a refusal"
    text = str(failure.value)
    assert text.lower() == (
        f"cannot connect to nats://msgflo:***@127.0.0.1:{guarded_server}: authorization violation"
    )
    async with nats(f"nats://msgflo:right@127.0.0.1:{guarded_server}") as good:
        await good.send_to(QueueKind.OUT, "anything", 1)


async def test_a_full_stream_is_reported_on_flush(prefix: str, cleanup: list[str]) -> None:
    require_broker(4222, "NATS")
    q = f"{prefix}.FULL"
    cleanup.append(q)
    async with nats(f"{NATS_JETSTREAM}&max_msgs=2") as client:
        await client.create_queue(QueueKind.IN, q)
        for i in range(3):
            await client.send_to(QueueKind.IN, q, i)
        with pytest.raises(TransportError) as failure:
            await client.flush()
    text = str(failure.value)
    assert text.startswith(f"nats://127.0.0.1:4222?jetstream=1&max_msgs=2: JetStream refused '{q}'")
    assert "maximum messages exceeded" in text


@pytest.mark.parametrize("fastpath", ["1", "0"])
async def test_a_delivery_with_headers_reaches_a_fast_path_consumer_in_order(
    prefix: str, fastpath: str
) -> None:
    """A foreign publisher may add NATS headers (nats-py's parser reads those, the fast path
    the rest): the consumer still sees every message once, in order, one at a time."""
    require_broker(4222, "NATS")
    q = f"{prefix}.IN"
    async with nats(f"{NATS}?fastpath={fastpath}") as client:
        assert client.fastpath is (fastpath == "1")
        inbox = Inbox(client)
        await client.subscribe_to_queue(q, inbox.handler)
        foreign = await nats_py.connect(NATS)
        try:
            for i in range(300):
                headers = {"Origin": "foreign"} if i % 3 == 0 else None
                await foreign.publish(q, str(i).encode(), headers=headers)
            await foreign.flush()
        finally:
            await foreign.close()
        assert [await inbox.get() for _ in range(300)] == list(range(300))


async def test_jetstream_consumer_keeps_pulling_past_many_batches(
    prefix: str, cleanup: list[str]
) -> None:
    """Pull requests are renewed before they run out: more messages than several requests
    ask for, all delivered once, in order, and acked (nothing left for a second consumer)."""
    require_broker(4222, "NATS")
    q = f"{prefix}.IN"
    cleanup.append(q)
    total = 5 * 512 + 7
    async with nats(NATS_JETSTREAM) as sender, nats(NATS_JETSTREAM) as worker:
        await sender.create_queue(QueueKind.IN, q)
        for i in range(total):
            await sender.send_to(QueueKind.IN, q, i)
        await sender.flush()
        inbox = Inbox(worker)
        await worker.subscribe_to_queue(q, inbox.handler)
        assert [await inbox.get() for _ in range(total)] == list(range(total))
        await worker.flush()
    async with nats(NATS_JETSTREAM) as later:
        inbox = Inbox(later)
        await later.subscribe_to_queue(q, inbox.handler)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(inbox.messages.get(), 2.0)
