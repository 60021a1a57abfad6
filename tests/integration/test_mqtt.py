"""The MQTT transport against Mosquitto and against the embedded amqtt broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from msgflo.broker import embedded_broker as embedded_mqtt_broker
from msgflo.transport import (
    Binding,
    BindingType,
    Message,
    QueueKind,
    TransportError,
    _paho,
    get_broker,
    get_client,
)
from msgflo.transport._paho import READ_SIZE
from msgflo.transport.mqtt import MqttBroker, MqttClient
from msgflo.transport.mqtt_subscriptions import HIGH_WATER
from tests.brokers import MOSQUITTO, require_broker
from tests.integration.mqtt_helpers import QUIET, WAIT, Inbox, topics

pytestmark = pytest.mark.broker


@pytest.fixture(params=["mosquitto", "amqtt"])
async def url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if request.param == "mosquitto":
        require_broker(1883, "Mosquitto")
        yield MOSQUITTO
    else:
        async with embedded_mqtt_broker() as embedded:
            yield embedded


def _with(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


@pytest.fixture
async def client(url: str) -> AsyncIterator[MqttClient]:
    c = get_client(url, connect_timeout=5)
    assert isinstance(c, MqttClient)
    await c.connect()
    yield c
    await c.disconnect()


@pytest.fixture
async def broker(url: str) -> AsyncIterator[MqttBroker]:
    b = get_broker(url, connect_timeout=5)
    assert isinstance(b, MqttBroker)
    await b.connect()
    yield b
    await b.disconnect()


async def test_send_reaches_exactly_the_subscribed_topic(client: MqttClient) -> None:
    a, b = topics("a.IN", "b.IN")
    inbox_a, inbox_b = Inbox(), Inbox()
    await client.create_queue(QueueKind.IN, a)
    await client.subscribe_to_queue(a, inbox_a.handler)
    await client.subscribe_to_queue(b, inbox_b.handler)
    await client.send_to(QueueKind.OUT, a, {"n": 1})
    await client.send_to(QueueKind.OUT, b, {"n": 2})
    await client.send_to(QueueKind.OUT, a, {"n": 3})
    await inbox_a.wait_for(2)
    await inbox_b.wait_for(1)
    assert [m.data for m in inbox_a.messages] == [{"n": 1}, {"n": 3}]
    assert [m.data for m in inbox_b.messages] == [{"n": 2}]
    assert inbox_a.messages[0].queue == a


async def test_payloads_arrive_byte_for_byte(client: MqttClient) -> None:
    (q,) = topics("q")
    inbox = Inbox()
    await client.subscribe_to_queue(q, inbox.handler)
    payloads = [
        b"not json {",
        b"\xff\xfe\x00binary",
        "grüße ✓ 日本".encode(),
        b'"123"',
        bytes(range(256)) * 4096,  # 1 MiB
    ]
    for body in payloads:
        await client.send_raw(QueueKind.OUT, q, body)
    await inbox.wait_for(len(payloads))
    assert inbox.bodies == payloads
    assert [m.data for m in inbox.messages[:4]] == [
        "not json {",
        b"\xff\xfe\x00binary",
        "grüße ✓ 日本",
        "123",
    ]


async def test_handlers_run_one_at_a_time_in_order(client: MqttClient) -> None:
    (q,) = topics("q")
    seen: list[int] = []
    running = 0
    overlap = False
    done = asyncio.Event()

    async def handler(message: Message) -> None:
        nonlocal running, overlap
        running += 1
        overlap = overlap or running > 1
        await asyncio.sleep(0)
        seen.append(message.data)
        running -= 1
        await client.ack_message(message)
        if len(seen) == 200:
            done.set()

    await client.subscribe_to_queue(q, handler)
    for i in range(200):
        await client.send_to(QueueKind.OUT, q, i)
    await asyncio.wait_for(done.wait(), WAIT)
    assert seen == list(range(200))
    assert not overlap


async def test_failing_handler_is_nacked_and_consumer_survives(client: MqttClient) -> None:
    (q,) = topics("q")
    inbox = Inbox()
    failed: list[Message] = []

    async def handler(message: Message) -> None:
        if message.data == "boom":
            failed.append(message)
            raise RuntimeError("handler bug")
        await inbox.handler(message)

    await client.subscribe_to_queue(q, handler)
    await client.send_to(QueueKind.OUT, q, "boom")
    await client.send_to(QueueKind.OUT, q, "fine")
    await inbox.wait_for(1)
    assert failed[0].nacked
    assert inbox.messages[0].data == "fine"


async def test_settling_twice_is_a_no_op(client: MqttClient) -> None:
    message = Message.from_body("x", b"1")
    await client.ack_message(message)
    await client.nack_message(message)
    assert message.acked and not message.nacked


async def test_unsubscribe_stops_delivery(client: MqttClient) -> None:
    q, marker = topics("q", "marker")
    inbox, markers = Inbox(), Inbox()
    await client.subscribe_to_queue(q, inbox.handler)
    await client.subscribe_to_queue(marker, markers.handler)
    await client.unsubscribe_from_queue(q)
    await client.send_to(QueueKind.OUT, q, "lost")
    await client.send_to(QueueKind.OUT, marker, "here")
    await markers.wait_for(1)
    await asyncio.sleep(QUIET)
    assert inbox.messages == []


async def test_qos1_delivers_in_order(url: str) -> None:
    (q,) = topics("q")
    inbox = Inbox()
    async with get_client(_with(url, "qos=1")) as c:
        await c.subscribe_to_queue(q, inbox.handler)
        for i in range(300):
            await c.send_to(QueueKind.OUT, q, i)
        await c.flush()
        await inbox.wait_for(300)
    assert [m.data for m in inbox.messages] == list(range(300))


async def test_binding_fans_out_bytes_unchanged(broker: MqttBroker, client: MqttClient) -> None:
    src, t1, t2 = topics("a.OUT", "b.IN", "c.IN")
    in1, in2 = Inbox(), Inbox()
    await client.subscribe_to_queue(t1, in1.handler)
    await client.subscribe_to_queue(t2, in2.handler)
    await broker.add_binding(Binding(src, t1))
    await broker.add_binding(Binding(src, t2, BindingType.ROUNDROBIN))
    bodies = [b"raw text, not JSON", b"\x00\x01\xff", b'{"a":  1}']
    for body in bodies:
        await client.send_raw(QueueKind.OUT, src, body)
    await in1.wait_for(3)
    await in2.wait_for(3)
    assert in1.bodies == bodies
    assert in2.bodies == bodies


async def test_duplicate_bindings_are_ignored_and_listed_once(
    broker: MqttBroker, client: MqttClient
) -> None:
    src, tgt, marker = topics("a.OUT", "b.IN", "marker")
    inbox, markers = Inbox(), Inbox()
    await client.subscribe_to_queue(tgt, inbox.handler)
    await client.subscribe_to_queue(marker, markers.handler)
    await broker.add_binding(Binding(src, tgt))
    await broker.add_binding(Binding(src, tgt))
    await broker.add_binding(Binding(src, marker))
    assert await broker.list_bindings() == [Binding(src, tgt), Binding(src, marker)]
    await client.send_to(QueueKind.OUT, src, 1)
    await markers.wait_for(1)
    await inbox.wait_for(1)
    await asyncio.sleep(QUIET)
    assert len(inbox.messages) == 1


async def test_remove_binding_stops_forwarding(broker: MqttBroker, client: MqttClient) -> None:
    src, tgt, marker = topics("a.OUT", "b.IN", "marker")
    inbox, markers = Inbox(), Inbox()
    await client.subscribe_to_queue(tgt, inbox.handler)
    await client.subscribe_to_queue(marker, markers.handler)
    await broker.add_binding(Binding(src, tgt))
    await client.send_to(QueueKind.OUT, src, "before")
    await inbox.wait_for(1)

    await broker.remove_binding(Binding(src, tgt))
    await broker.add_binding(Binding(src, marker))
    assert await broker.list_bindings() == [Binding(src, marker)]
    await client.send_to(QueueKind.OUT, src, "after")
    await markers.wait_for(1)
    await asyncio.sleep(QUIET)
    assert [m.data for m in inbox.messages] == ["before"]


async def test_removing_the_last_binding_unsubscribes(broker: MqttBroker) -> None:
    src, tgt = topics("a.OUT", "b.IN")
    await broker.add_binding(Binding(src, tgt))
    assert src in broker._subscriptions.routes
    await broker.remove_binding(Binding(src, tgt))
    assert src not in broker._subscriptions.routes
    assert await broker.list_bindings() == []


async def test_binding_cycle_forwards_each_message_once(
    broker: MqttBroker, client: MqttClient
) -> None:
    a, b, c = topics("a", "b", "c")
    seen_a, seen_b, seen_c = Inbox(), Inbox(), Inbox()
    await client.subscribe_to_queue(a, seen_a.handler)
    await client.subscribe_to_queue(b, seen_b.handler)
    await client.subscribe_to_queue(c, seen_c.handler)
    await broker.add_binding(Binding(a, b))
    await broker.add_binding(Binding(b, a))
    await broker.add_binding(Binding(b, c))
    await client.send_to(QueueKind.OUT, a, "m1")
    await client.send_to(QueueKind.OUT, b, "m2")
    await seen_c.wait_for(2)
    await asyncio.sleep(QUIET)
    assert sorted(m.data for m in seen_a.messages) == ["m1", "m2"]
    assert sorted(m.data for m in seen_b.messages) == ["m1", "m2"]
    assert sorted(m.data for m in seen_c.messages) == ["m1", "m2"]


async def test_binding_to_itself_is_recorded_and_forwards_nothing(
    broker: MqttBroker, client: MqttClient
) -> None:
    a, marker = topics("a", "marker")
    seen, markers = Inbox(), Inbox()
    await client.subscribe_to_queue(a, seen.handler)
    await client.subscribe_to_queue(marker, markers.handler)
    await broker.add_binding(Binding(a, a))
    await broker.add_binding(Binding(a, marker))
    assert Binding(a, a) in await broker.list_bindings()
    await client.send_to(QueueKind.OUT, a, "once")
    await markers.wait_for(1)
    await asyncio.sleep(QUIET)
    assert [m.data for m in seen.messages] == ["once"]


async def test_data_subscription_observes_and_stops(broker: MqttBroker, client: MqttClient) -> None:
    src, tgt, marker = topics("a.OUT", "b.IN", "marker")
    binding = Binding(src, tgt)
    observed, markers = Inbox(), Inbox()
    await client.subscribe_to_queue(marker, markers.handler)
    await broker.add_binding(binding)
    await broker.subscribe_data(binding, observed.data_handler)
    await client.send_to(QueueKind.OUT, src, {"x": 1})
    await observed.wait_for(1)
    assert observed.data == [(binding, {"x": 1})]

    await broker.unsubscribe_data(binding, observed.data_handler)
    await broker.add_binding(Binding(src, marker))
    await client.send_to(QueueKind.OUT, src, {"x": 2})
    await markers.wait_for(1)
    await asyncio.sleep(QUIET)
    assert observed.data == [(binding, {"x": 1})]


async def test_discovery_on_fbp_topic(broker: MqttBroker, client: MqttClient) -> None:
    (role,) = topics("role")
    inbox = Inbox()
    await broker.subscribe_participant_change(inbox.handler)
    definition = {"id": f"{role}-1", "role": role, "component": "C", "inports": [], "outports": []}
    await client.register_participant(definition)

    async def mine() -> Message:
        while True:
            await inbox.wait_for(len(inbox.messages) + 1)
            for m in inbox.messages:
                if isinstance(m.data, dict) and m.data.get("payload", {}).get("role") == role:
                    return m

    found = await asyncio.wait_for(mine(), WAIT)
    assert found.queue == "fbp"
    assert found.data == {"protocol": "discovery", "command": "participant", "payload": definition}


async def test_unshared_consumers_each_see_every_message(url: str) -> None:
    (q,) = topics("worker.IN")
    first, second = Inbox(), Inbox()
    plain = _with(url, "shared=0")
    async with get_client(plain) as c1, get_client(plain) as c2:
        await c1.subscribe_to_queue(q, first.handler)
        await c2.subscribe_to_queue(q, second.handler)
        for i in range(10):
            await c1.send_to(QueueKind.OUT, q, i)
        await first.wait_for(10)
        await second.wait_for(10)


async def test_amqtt_default_falls_back_to_plain_subscriptions() -> None:
    (q,) = topics("worker.IN")
    first, second = Inbox(), Inbox()
    async with embedded_mqtt_broker() as url, get_client(url) as c1, get_client(url) as c2:
        await c1.subscribe_to_queue(q, first.handler)
        await c2.subscribe_to_queue(q, second.handler)
        for i in range(10):
            await c1.send_to(QueueKind.OUT, q, i)
        await first.wait_for(10)
        await second.wait_for(10)


async def test_consumers_share_a_queue_by_default_on_mosquitto() -> None:
    require_broker(1883, "Mosquitto")
    (q,) = topics("worker.IN")
    everything = Inbox()
    per_client: dict[str, list[int]] = {"c1": [], "c2": []}

    def counting(name: str) -> Callable[[Message], Awaitable[None]]:
        async def handler(message: Message) -> None:
            per_client[name].append(message.data)
            await everything.handler(message)

        return handler

    async with get_client(MOSQUITTO) as c1, get_client(MOSQUITTO) as c2, get_client(MOSQUITTO) as p:
        await c1.subscribe_to_queue(q, counting("c1"))
        await c2.subscribe_to_queue(q, counting("c2"))
        for i in range(40):
            await p.send_to(QueueKind.OUT, q, i)
        await everything.wait_for(40)
        await asyncio.sleep(QUIET)
    assert sorted(m.data for m in everything.messages) == list(range(40))
    assert per_client["c1"] and per_client["c2"]


async def test_connect_failure_is_one_line_naming_the_url() -> None:
    start = time.monotonic()
    with pytest.raises(TransportError) as info:
        await get_client("mqtt://user:secret@127.0.0.1:1", connect_timeout=3).connect()
    assert time.monotonic() - start < 3.5
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("cannot connect to mqtt://user:***@127.0.0.1:1")
    assert "secret" not in text
    assert "refused" in text


async def test_disconnect_leaves_no_task_behind(url: str) -> None:
    (q,) = topics("q")
    before = asyncio.all_tasks()
    b = get_broker(url)
    await b.connect()
    await b.subscribe_to_queue(q, Inbox().handler)
    await b.add_binding(Binding(q, q + "x"))
    await b.disconnect()
    await b.disconnect()
    await asyncio.sleep(0)
    ours = [t for t in asyncio.all_tasks() - before if "site-packages/amqtt" not in repr(t)]
    assert ours == []


async def test_a_flooded_consumer_stops_reading_at_the_high_water_mark_and_resumes() -> None:
    """Deliveries a slow handler has not taken stay near HIGH_WATER bytes, however much the
    broker has for it (the rest waits in TCP and on the broker); reading resumes as it drains."""
    require_broker(1883, "Mosquitto")
    (q,) = topics("slow.IN")
    gate = asyncio.Event()
    taken = Inbox()

    async def slow(message: Message) -> None:
        await gate.wait()
        await taken.handler(message)

    body = b"x" * 4096
    flood = 4 * HIGH_WATER // len(body)
    consumer = get_client(MOSQUITTO)
    assert isinstance(consumer, MqttClient)
    async with consumer, get_client(MOSQUITTO) as producer:
        assert consumer.fastpath
        await consumer.subscribe_to_queue(q, slow)
        peak = 0
        for i in range(flood):
            await producer.send_raw(QueueKind.OUT, q, body)
            if i % 100 == 0:
                await asyncio.sleep(0)
                peak = max(peak, consumer.buffered)
        await producer.flush()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            peak = max(peak, consumer.buffered)
            await asyncio.sleep(0.01)
        assert HIGH_WATER <= peak <= HIGH_WATER + READ_SIZE
        gate.set()
        # Reading resumes: the consumer takes what the broker kept for it (Mosquitto drops
        # QoS 0 messages past its max_queued_messages), then what is sent afterwards.
        count = -1
        while count != len(taken.messages):
            count = len(taken.messages)
            await asyncio.sleep(QUIET)
        assert count > (HIGH_WATER + READ_SIZE) // len(body)
        assert consumer.buffered == 0
        await producer.send_raw(QueueKind.OUT, q, b'"last"')
        await taken.wait_for(count + 1)
        assert taken.messages[-1].data == "last"


async def test_untested_library_versions_turn_the_fast_path_off_and_messages_still_flow(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    require_broker(1883, "Mosquitto")
    monkeypatch.setitem(_paho.TESTED, "paho-mqtt", ((1, 0), (1, 1)))
    (q,) = topics("checked.IN")
    received = Inbox()
    client = get_client(MOSQUITTO)
    assert isinstance(client, MqttClient)
    async with client:
        assert not client.fastpath
        await client.subscribe_to_queue(q, received.handler)
        await client.send_to(QueueKind.OUT, q, "public API")
        await received.wait_for(1)
    assert received.messages[0].data == "public API"
    assert "MQTT fast path off (paho-mqtt 2." in caplog.text
