"""The MQTT transport survives a lost connection (cut through FaultProxy, never a broker restart)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from msgflo.testing.proxy import FaultProxy
from msgflo.transport import Binding, QueueKind, get_broker, get_client
from msgflo.transport.mqtt import MqttBroker, MqttClient
from tests.brokers import MOSQUITTO, require_broker
from tests.integration.mqtt_helpers import WAIT, Inbox, topics

pytestmark = pytest.mark.broker


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    require_broker(1883, "Mosquitto")
    async with FaultProxy("127.0.0.1", 1883) as p:
        yield p


class Reconnects:
    def __init__(self) -> None:
        self.count = 0
        self._event = asyncio.Event()

    async def listener(self) -> None:
        self.count += 1
        self._event.set()

    async def wait(self) -> None:
        await asyncio.wait_for(self._event.wait(), WAIT)
        self._event.clear()


async def test_client_reconnects_resubscribes_and_delivers_buffered_sends(
    proxy: FaultProxy,
) -> None:
    mine, theirs = topics("mine.IN", "theirs.IN")
    received, observed = Inbox(), Inbox()
    reconnects = Reconnects()
    async with get_client(MOSQUITTO) as direct:
        await direct.subscribe_to_queue(theirs, observed.handler)
        client = get_client(proxy.url("mqtt"), connect_timeout=5)
        assert isinstance(client, MqttClient)
        async with client:
            client.on_reconnect(reconnects.listener)
            await client.subscribe_to_queue(mine, received.handler)

            proxy.block()
            await asyncio.wait_for(client.wait_disconnected(), WAIT)
            for i in range(5):
                await client.send_to(QueueKind.OUT, theirs, i)
            proxy.unblock()

            await reconnects.wait()
            assert reconnects.count == 1
            await observed.wait_for(5)
            assert [m.data for m in observed.messages] == [0, 1, 2, 3, 4]

            await direct.send_to(QueueKind.OUT, mine, "after")
            await received.wait_for(1)
            assert received.messages[0].data == "after"
            assert proxy.connections == 2


async def test_reconnect_keeps_trying_while_the_broker_is_away(proxy: FaultProxy) -> None:
    (q,) = topics("q")
    received = Inbox()
    reconnects = Reconnects()
    client = get_client(proxy.url("mqtt"), connect_timeout=5)
    assert isinstance(client, MqttClient)
    async with client, get_client(MOSQUITTO) as direct:
        client.on_reconnect(reconnects.listener)
        await client.subscribe_to_queue(q, received.handler)
        proxy.block()
        await asyncio.wait_for(client.wait_disconnected(), WAIT)
        await asyncio.sleep(1.0)  # several refused attempts happen while the broker is away
        assert not client.connected
        proxy.unblock()
        back = asyncio.get_running_loop().time()
        await reconnects.wait()
        # Refused attempts fail at once, so the backoff (capped well below this) decides:
        # aiomqtt alone would sit out its whole connect timeout on each of them.
        assert asyncio.get_running_loop().time() - back < 3.0
        await direct.send_to(QueueKind.OUT, q, "back")
        await received.wait_for(1)


async def test_broker_restores_bindings_after_a_cut(proxy: FaultProxy) -> None:
    src, tgt = topics("a.OUT", "b.IN")
    forwarded = Inbox()
    reconnects = Reconnects()
    broker = get_broker(proxy.url("mqtt"), connect_timeout=5)
    assert isinstance(broker, MqttBroker)
    async with broker, get_client(MOSQUITTO) as direct:
        broker.on_reconnect(reconnects.listener)
        await direct.subscribe_to_queue(tgt, forwarded.handler)
        await broker.add_binding(Binding(src, tgt))
        proxy.cut()
        await reconnects.wait()
        assert await broker.list_bindings() == [Binding(src, tgt)]
        await direct.send_to(QueueKind.OUT, src, "through")
        await forwarded.wait_for(1)
        assert forwarded.messages[0].data == "through"


async def test_shared_subscription_restored_after_a_cut(proxy: FaultProxy) -> None:
    (q,) = topics("worker.IN")
    received = Inbox()
    reconnects = Reconnects()
    client = get_client(proxy.url("mqtt", suffix="?shared=1&qos=1"), connect_timeout=5)
    async with client, get_client(MOSQUITTO) as direct:
        client.on_reconnect(reconnects.listener)
        await client.subscribe_to_queue(q, received.handler)
        proxy.cut()
        await reconnects.wait()
        await direct.send_to(QueueKind.OUT, q, "shared")
        await received.wait_for(1)


@pytest.mark.parametrize("fastpath", ["1", "0"])
async def test_qos1_messages_sent_while_a_consumer_is_cut_off_all_arrive(
    proxy: FaultProxy, fastpath: str
) -> None:
    """The consumer keeps its client id and a persistent session, so the broker keeps what
    arrives for it during the cut and delivers it after the reconnection: 0 lost."""
    (q,) = topics("worker.IN")
    received = Inbox()
    reconnects = Reconnects()
    consumer = get_client(
        proxy.url("mqtt", suffix=f"?qos=1&fastpath={fastpath}"), connect_timeout=5
    )
    assert isinstance(consumer, MqttClient)
    async with consumer, get_client(f"{MOSQUITTO}?qos=1") as producer:
        consumer.on_reconnect(reconnects.listener)
        await consumer.subscribe_to_queue(q, received.handler)
        for i in range(100):
            await producer.send_to(QueueKind.OUT, q, i)
            if i == 40:
                proxy.block()  # some of 0..40 are still in flight as the connection dies
        await producer.flush()
        await asyncio.wait_for(consumer.wait_disconnected(), WAIT)
        proxy.unblock()
        await reconnects.wait()
        await received.wait_for(100)
        assert set(m.data for m in received.messages) == set(range(100))


async def test_qos1_publishes_unacknowledged_at_a_cut_are_sent_again(proxy: FaultProxy) -> None:
    (q,) = topics("sink.IN")
    observed = Inbox()
    reconnects = Reconnects()
    producer = get_client(proxy.url("mqtt", suffix="?qos=1"), connect_timeout=5)
    async with producer, get_client(f"{MOSQUITTO}?qos=1") as sink:
        await sink.subscribe_to_queue(q, observed.handler)
        producer.on_reconnect(reconnects.listener)
        for i in range(200):
            await producer.send_to(QueueKind.OUT, q, i)
            if i == 100:
                proxy.cut()  # publishes written but not acknowledged die with the connection
        await reconnects.wait()
        await producer.flush()
        await observed.wait_for(200)
        assert set(m.data for m in observed.messages) == set(range(200))


@pytest.mark.parametrize("given_id", [False, True], ids=["generated-id", "clientId"])
async def test_disconnect_ends_the_session_of_a_generated_client_id_only(given_id: bool) -> None:
    """A generated id never comes back: its session would queue messages for nobody.  A
    ``clientId`` the user chose keeps its session, as they asked."""
    require_broker(1883, "Mosquitto")
    (q,) = topics("gone.IN")
    query = "?qos=1&shared=0" + (
        f"&clientId=msgflo-test-{uuid.uuid4().hex[:10]}" if given_id else ""
    )
    client = get_client(f"{MOSQUITTO}{query}")
    assert isinstance(client, MqttClient)
    async with client:
        await client.subscribe_to_queue(q, Inbox().handler)
    async with get_client(f"{MOSQUITTO}?qos=1") as producer:
        await producer.send_to(QueueKind.OUT, q, "while away")
        await producer.flush()
    # Come back under the same id, asking for the old session, and see what it kept.
    async with aiomqtt.Client(
        "127.0.0.1", 1883, identifier=client.client_id, clean_session=False
    ) as again:
        kept = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                async for message in again.messages:
                    kept.append(message.payload)
                    break
        await again.unsubscribe(q)
    assert kept == ([b'"while away"'] if given_id else [])
