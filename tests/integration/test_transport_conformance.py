"""One suite, three brokers: what every transport must do the same way.

Runs against the memory transport, Mosquitto (MQTT 3.1.1 and 5), RabbitMQ and NATS; the broker
transports run twice, on their fast path and on their libraries' public API only
(``?fastpath=0``).  Where a transport cannot do
something by its nature, the test says so by its parameters, not by a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from msgflo.transport import (
    Binding,
    BindingType,
    Broker,
    Client,
    Message,
    QueueKind,
    get_broker,
    get_client,
)
from msgflo.transport.amqp import AmqpClient
from msgflo.transport.mqtt import MqttClient
from msgflo.transport.nats import NatsClient
from msgflo.transport.reason import TRACEBACK_LIMIT
from tests.brokers import url_for

TRANSPORTS = [
    pytest.param("memory", id="memory"),
    pytest.param("mqtt", id="mosquitto", marks=pytest.mark.broker),
    pytest.param("mqtt?fastpath=0", id="mosquitto-public", marks=pytest.mark.broker),
    pytest.param("mqtt5", id="mosquitto-v5", marks=pytest.mark.broker),
    pytest.param("mqtt5?fastpath=0", id="mosquitto-v5-public", marks=pytest.mark.broker),
    pytest.param("amqp", id="rabbitmq", marks=pytest.mark.broker),
    pytest.param("amqp?fastpath=0", id="rabbitmq-public", marks=pytest.mark.broker),
    pytest.param("nats", id="nats", marks=pytest.mark.broker),
    pytest.param("nats?fastpath=0", id="nats-public", marks=pytest.mark.broker),
    pytest.param("nats-js", id="nats-jetstream", marks=pytest.mark.broker),
    pytest.param("nats-js?fastpath=0", id="nats-jetstream-public", marks=pytest.mark.broker),
]
WAIT = 10.0


class Env:
    """Clients of one broker for one test; removes what the test declared."""

    def __init__(self, param: str, prefix: str) -> None:
        self.kind, _, query = param.partition("?")
        self.fastpath = query != "fastpath=0"
        base = url_for(self.kind, "conformance")
        self.url = base + (("&" if "?" in base else "?") + query if query else "")
        self.prefix = prefix
        self.clients: list[Client] = []
        self.declared: list[tuple[QueueKind, str]] = []

    def name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    async def client(self) -> Client:
        client = get_client(self.url, connect_timeout=10)
        await client.connect()
        self.clients.append(client)
        self.check_path(client)
        return client

    def check_path(self, client: Client) -> None:
        """The client runs the path this test asked for (a failed check would hide here)."""
        if self.kind != "memory":
            assert isinstance(client, MqttClient | AmqpClient | NatsClient)
            assert client.fastpath is self.fastpath

    async def broker(self) -> Broker:
        broker = get_broker(self.url, connect_timeout=10)
        await broker.connect()
        self.clients.append(broker)
        self.check_path(broker)
        return broker

    async def inqueue(self, client: Client, name: str) -> asyncio.Queue[Message]:
        """Declare and consume ``name``; every delivery is acked and collected."""
        received: asyncio.Queue[Message] = asyncio.Queue()

        async def keep(message: Message) -> None:
            received.put_nowait(message)
            await client.ack_message(message)

        await client.create_queue(QueueKind.IN, name)
        self.declared.append((QueueKind.IN, name))
        await client.subscribe_to_queue(name, keep)
        return received

    async def outqueue(self, client: Client, name: str) -> None:
        await client.create_queue(QueueKind.OUT, name)
        self.declared.append((QueueKind.OUT, name))

    async def close(self) -> None:
        if self.clients and self.kind in ("amqp", "nats-js"):
            cleaner = self.clients[0]
            for kind, name in self.declared:
                with contextlib.suppress(Exception):  # cleanup must not hide the result
                    await cleaner.remove_queue(kind, name)
        for client in self.clients:
            await client.disconnect()


@pytest.fixture(params=TRANSPORTS)
async def env(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Env]:
    environment = Env(request.param, prefix)
    yield environment
    await environment.close()


async def get(queue: asyncio.Queue[Message]) -> Message:
    return await asyncio.wait_for(queue.get(), WAIT)


async def quiet(queue: asyncio.Queue[Message], marker_queue: asyncio.Queue[Message]) -> None:
    """Prove ``queue`` got nothing: a marker sent after it on another path has arrived first."""
    await get(marker_queue)
    await asyncio.sleep(0.05)
    assert queue.empty()


async def test_send_to_inqueue_and_receive(env: Env) -> None:
    client = await env.client()
    q = env.name("IN")
    received = await env.inqueue(client, q)
    await client.send_to(QueueKind.IN, q, {"hello": "world", "n": 1})
    message = await get(received)
    assert message.data == {"hello": "world", "n": 1}
    assert message.queue == q


async def test_outqueue_with_same_name_as_inqueue_needs_no_binding(env: Env) -> None:
    client = await env.client()
    q = env.name("SHARED")
    received = await env.inqueue(client, q)
    await env.outqueue(client, q)
    await client.send_to(QueueKind.OUT, q, [1, 2, 3])
    assert (await get(received)).data == [1, 2, 3]


async def test_sending_to_an_unbound_outqueue_is_fine(env: Env) -> None:
    client = await env.client()
    await env.outqueue(client, env.name("NOWHERE"))
    await client.send_to(QueueKind.OUT, env.name("NOWHERE"), "dropped")
    await client.flush()


async def test_pubsub_binding_delivers_and_fans_out(env: Env) -> None:
    broker = await env.broker()
    client = await env.client()
    src, a, b = env.name("OUT"), env.name("A"), env.name("B")
    await env.outqueue(client, src)
    got_a = await env.inqueue(client, a)
    got_b = await env.inqueue(client, b)
    await broker.add_binding(Binding(src, a))
    await broker.add_binding(Binding(src, b))
    assert set(await broker.list_bindings()) >= {Binding(src, a), Binding(src, b)}
    for i in range(5):
        await client.send_to(QueueKind.OUT, src, i)
    assert [(await get(got_a)).data for _ in range(5)] == list(range(5))
    assert [(await get(got_b)).data for _ in range(5)] == list(range(5))


async def test_fan_in_from_three_outqueues(env: Env) -> None:
    broker = await env.broker()
    client = await env.client()
    tgt = env.name("SINK")
    got = await env.inqueue(client, tgt)
    for i in range(3):
        src = env.name(f"SRC{i}")
        await env.outqueue(client, src)
        await broker.add_binding(Binding(src, tgt))
    for i in range(3):
        await client.send_to(QueueKind.OUT, env.name(f"SRC{i}"), i)
    assert sorted([(await get(got)).data for _ in range(3)]) == [0, 1, 2]


async def test_removed_binding_stops_delivery(env: Env) -> None:
    broker = await env.broker()
    client = await env.client()
    src, tgt, marker = env.name("OUT"), env.name("IN"), env.name("MARK")
    await env.outqueue(client, src)
    got = await env.inqueue(client, tgt)
    marks = await env.inqueue(client, marker)
    await broker.add_binding(Binding(src, tgt))
    await client.send_to(QueueKind.OUT, src, "before")
    assert (await get(got)).data == "before"
    await broker.remove_binding(Binding(src, tgt))
    assert Binding(src, tgt) not in await broker.list_bindings()
    await client.send_to(QueueKind.OUT, src, "after")
    await client.flush()
    await client.send_to(QueueKind.IN, marker, "marker")
    await quiet(got, marks)


async def test_competing_consumers_share_a_queue(env: Env) -> None:
    q = env.name("WORK")
    arrivals: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    for worker in range(2):
        client = await env.client()

        async def keep(message: Message, worker: int = worker, client: Client = client) -> None:
            arrivals.put_nowait((worker, message.data))
            await client.ack_message(message)

        await client.create_queue(QueueKind.IN, q)
        await client.subscribe_to_queue(q, keep)
    env.declared.append((QueueKind.IN, q))
    sender = await env.client()
    for i in range(40):
        await sender.send_to(QueueKind.IN, q, i)
    seen = [await asyncio.wait_for(arrivals.get(), WAIT) for _ in range(40)]
    assert sorted(data for _, data in seen) == list(range(40)), "each message reaches one consumer"
    assert {worker for worker, _ in seen} == {0, 1}, "both consumers get work"


async def test_nacked_message_is_dead_lettered_not_redelivered(env: Env) -> None:
    broker = await env.broker()
    worker = await env.client()
    tgt, dead = env.name("JOB"), env.name("DEAD")
    dead_got = await env.inqueue(worker, dead)
    await broker.add_binding(Binding("", tgt, BindingType.ROUNDROBIN, deadletter=dead))
    await worker.create_queue(QueueKind.IN, tgt)
    env.declared.append((QueueKind.IN, tgt))
    env.declared.append((QueueKind.OUT, f"dead-{tgt}"))
    seen: list[Any] = []

    async def work(message: Message) -> None:
        seen.append(message.data)
        if message.data == "poison":
            await worker.nack_message(message)
        else:
            await worker.ack_message(message)

    await worker.subscribe_to_queue(tgt, work)
    await worker.send_to(QueueKind.IN, tgt, "poison")
    await worker.send_to(QueueKind.IN, tgt, "fine")
    assert (await get(dead_got)).data == "poison"
    await worker.send_to(QueueKind.IN, dead, "marker")
    assert (await get(dead_got)).data == "marker"
    assert seen == ["poison", "fine"], "a nacked message is not redelivered"


async def test_dead_letter_carries_its_reason_beside_the_unchanged_payload(env: Env) -> None:
    broker = await env.broker()
    worker = await env.client()
    tgt, dead = env.name("JOB"), env.name("DEAD")
    dead_got = await env.inqueue(worker, dead)
    await broker.add_binding(Binding("", tgt, BindingType.ROUNDROBIN, deadletter=dead))
    await worker.create_queue(QueueKind.IN, tgt)
    env.declared.append((QueueKind.IN, tgt))
    env.declared.append((QueueKind.OUT, f"dead-{tgt}"))
    huge = "x" * 1_000_000

    async def work(message: Message) -> None:
        why = {"reason": "error", "error": message.data, "attempt": 2, "traceback": huge}
        await worker.nack_message(message, reason=why)

    await worker.subscribe_to_queue(tgt, work)
    binary = b"\xff\x00 not utf-8"
    await worker.send_raw(QueueKind.IN, tgt, b'{"job": 1}')
    await worker.send_raw(QueueKind.IN, tgt, binary)
    first, second = await get(dead_got), await get(dead_got)
    assert first.data == {"job": 1} and first.body == b'{"job": 1}'
    assert first.reason is not None
    assert first.reason["reason"] == "error" and first.reason["attempt"] == 2
    assert first.reason["error"] == "{'job': 1}"
    traceback = str(first.reason["traceback"])
    assert len(traceback) == TRACEBACK_LIMIT and traceback.endswith("…"), "cut, never refused"
    assert second.body == binary, "bytes that are not UTF-8 cross unchanged"


async def test_settling_twice_is_harmless(env: Env) -> None:
    client = await env.client()
    q = env.name("TWICE")
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def double_ack(message: Message) -> None:
        await client.ack_message(message)
        await client.ack_message(message)
        await client.nack_message(message)
        got.put_nowait(message)

    await client.create_queue(QueueKind.IN, q)
    env.declared.append((QueueKind.IN, q))
    await client.subscribe_to_queue(q, double_ack)
    await client.send_to(QueueKind.IN, q, 1)
    await client.send_to(QueueKind.IN, q, 2)
    assert [(await get(got)).data for _ in range(2)] == [1, 2]


async def test_discovery_round_trip(env: Env) -> None:
    broker = await env.broker()
    seen: asyncio.Queue[Message] = asyncio.Queue()
    role = env.name("role")

    async def on_discovery(message: Message) -> None:
        if isinstance(message.data, dict) and message.data.get("payload", {}).get("role") == role:
            seen.put_nowait(message)

    await broker.subscribe_participant_change(on_discovery)
    client = await env.client()
    definition = {
        "id": f"{role}-1",
        "role": role,
        "component": "test/Thing",
        "label": "",
        "icon": "file-word-o",
        "inports": [{"id": "in", "type": "any", "queue": f"{role}.IN"}],
        "outports": [],
    }
    await client.register_participant(definition)
    envelope = (await get(seen)).data
    assert envelope == {"protocol": "discovery", "command": "participant", "payload": definition}


async def test_data_subscription_observes_a_binding(env: Env) -> None:
    broker = await env.broker()
    client = await env.client()
    src, tgt = env.name("OUT"), env.name("IN")
    await env.outqueue(client, src)
    got = await env.inqueue(client, tgt)
    binding = Binding(src, tgt)
    await broker.add_binding(binding)
    observed: asyncio.Queue[tuple[Binding, Any]] = asyncio.Queue()

    async def observe(b: Binding, data: Any) -> None:
        observed.put_nowait((b, data))

    await broker.subscribe_data(binding, observe)
    for i in range(3):
        await client.send_to(QueueKind.OUT, src, {"i": i})
    seen = [await asyncio.wait_for(observed.get(), WAIT) for _ in range(3)]
    assert seen == [(binding, {"i": i}) for i in range(3)]
    assert [(await get(got)).data for _ in range(3)] == [{"i": i} for i in range(3)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not json at all", "not json at all"),
        (b"\xff\xfe\x00binary", b"\xff\xfe\x00binary"),
        ("grüße, 世界, 🙂".encode(), "grüße, 世界, 🙂"),
        ('{"text": "ünïcödé ✓"}'.encode(), {"text": "ünïcödé ✓"}),
        (b"", ""),
        (b"null", None),
        (b"0", 0),
    ],
    ids=["text", "binary", "unicode-text", "unicode-json", "empty", "null", "zero"],
)
async def test_payloads_arrive_as_sent(env: Env, body: bytes, expected: Any) -> None:
    client = await env.client()
    q = env.name("RAW")
    received = await env.inqueue(client, q)
    await client.send_raw(QueueKind.IN, q, body)
    message = await get(received)
    assert message.body == body
    assert message.data == expected


async def test_one_megabyte_message(env: Env) -> None:
    client = await env.client()
    q = env.name("BIG")
    received = await env.inqueue(client, q)
    big = {"blob": "x" * 1_000_000}
    await client.send_to(QueueKind.IN, q, big)
    assert (await get(received)).data == big


async def test_many_queues(env: Env) -> None:
    client = await env.client()
    queues = [env.name(f"Q{i}") for i in range(50)]
    received = [await env.inqueue(client, q) for q in queues]
    for i, q in enumerate(queues):
        await client.send_to(QueueKind.IN, q, i)
    for i, got in enumerate(received):
        assert (await get(got)).data == i
