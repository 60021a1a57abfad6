"""On MQTT (and NATS, wired the same way) our participants subscribe to their sources themselves when the coordinator asks,
so data never detours through the coordinator and keeps flowing when it stops; participants
that cannot be asked are served by forwarding."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import msgflo
from msgflo.coordinator import Coordinator, CoordinatorOptions, Event, EventKind
from msgflo.transport import Client, Message, QueueKind, get_broker, get_client
from msgflo.wiring import Endpoint
from tests.brokers import MOSQUITTO, NATS, NATS_JETSTREAM, require_broker

pytestmark = pytest.mark.broker
WAIT = 10.0


class Upper(msgflo.Participant):
    component = "test/Upper"
    inports = {"in": "string"}
    outports = {"out": "string"}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        await self.send("out", str(msg.data).upper())


class Net:
    def __init__(self, prefix: str, url: str) -> None:
        port = 1883 if url == MOSQUITTO else 4222
        require_broker(port, "Mosquitto" if port == 1883 else "NATS")
        self.url = url
        self.prefix = prefix
        self.clients: list[Client] = []
        self.participants: list[msgflo.Participant] = []
        self.coordinator = Coordinator(get_broker(url), options=CoordinatorOptions(broker_url=url))

    def role(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def client(self) -> Client:
        client = get_client(self.url)
        await client.connect()
        self.clients.append(client)
        return client

    async def run(self, role: str) -> msgflo.Participant:
        participant = Upper(role)
        await participant.start(await self.client())
        self.participants.append(participant)
        return participant

    async def watch(self, topic: str) -> asyncio.Queue[Any]:
        client = await self.client()
        got: asyncio.Queue[Any] = asyncio.Queue()

        async def keep(message: Message) -> None:
            got.put_nowait(message.data)

        await client.subscribe_to_queue(topic, keep)
        return got

    async def graph(self, a: str, b: str) -> None:
        await self.coordinator.load_graph(
            {
                "processes": {a: {"component": "test/Upper"}, b: {"component": "test/Upper"}},
                "connections": [
                    {"src": {"process": a, "port": "out"}, "tgt": {"process": b, "port": "in"}}
                ],
            }
        )

    async def until_wired(self) -> None:
        assert await self.coordinator.settled(WAIT), "the edge was not wired"

    async def close(self) -> None:
        for participant in self.participants:
            await participant.stop()
        for client in self.clients:
            await client.disconnect()


@pytest.fixture(
    params=[MOSQUITTO, NATS, NATS_JETSTREAM], ids=["mosquitto", "nats", "nats-jetstream"]
)
async def net(prefix: str, request: pytest.FixtureRequest) -> AsyncIterator[Net]:
    n = Net(prefix, request.param)
    await n.coordinator.start()
    yield n
    await n.coordinator.stop()
    await n.close()


async def get(queue: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(queue.get(), WAIT)


async def test_our_participant_attaches_and_data_flows_without_the_coordinator(net: Net) -> None:
    a, b = net.role("a"), net.role("b")
    sender = await net.client()
    await net.run(a)
    await net.run(b)
    out = await net.watch(f"{b}.OUT")
    await net.graph(a, b)
    await net.until_wired()
    [binding] = net.coordinator.attached
    assert (binding.src, binding.tgt) == (f"{a}.OUT", f"{b}.IN")
    assert await net.coordinator.broker.list_bindings() == [], (
        "nothing forwarded by the coordinator"
    )

    await sender.send_to(QueueKind.IN, f"{a}.IN", "one")
    assert await get(out) == "ONE"

    await net.coordinator.stop()
    await sender.send_to(QueueKind.IN, f"{a}.IN", "two")
    assert await get(out) == "TWO", "data keeps flowing after the coordinator stopped"


async def test_a_participant_that_cannot_be_asked_is_forwarded(net: Net) -> None:
    a, b = net.role("a"), net.role("b")
    await net.run(a)
    # b is foreign: it consumes its topic but knows nothing of control requests.
    foreign = await net.client()
    got = await net.watch(f"{b}.IN")
    await foreign.register_participant(
        {
            "id": f"{b}-device",
            "role": b,
            "component": "device/Lamp",
            "label": "",
            "icon": "lightbulb-o",
            "inports": [{"id": "in", "type": "string", "queue": f"{b}.IN"}],
            "outports": [],
        }
    )
    net.coordinator.control.timeout = 0.5
    await net.graph(a, b)
    await net.until_wired()
    assert net.coordinator.attached == {}
    assert [(x.src, x.tgt) for x in await net.coordinator.broker.list_bindings()] == [
        (f"{a}.OUT", f"{b}.IN")
    ]
    sender = await net.client()
    await sender.send_to(QueueKind.IN, f"{a}.IN", "lamp on")
    assert await get(got) == "LAMP ON"


async def test_two_instances_of_a_role_share_the_work(net: Net) -> None:
    a, b = net.role("a"), net.role("b")
    both_known = asyncio.Event()

    def count(event: Event) -> None:
        if event.kind is EventKind.WIRED and event.data.get("id") == second.id:
            both_known.set()

    net.coordinator.add_listener(count)
    await net.run(a)
    first = await net.run(b)
    out = await net.watch(f"{b}.OUT")
    await net.graph(a, b)
    await net.until_wired()
    second = Upper(b)  # a new instance joins an attached edge
    await second.start(await net.client())
    net.participants.append(second)
    await asyncio.wait_for(both_known.wait(), WAIT)
    [attached] = net.coordinator.attached.values()
    assert attached == {first.id, second.id}
    sender = await net.client()
    for i in range(20):
        await sender.send_to(QueueKind.IN, f"{a}.IN", f"m{i}")
    received = sorted([await get(out) for _ in range(20)])
    assert received == sorted(f"M{i}" for i in range(20))
    await asyncio.sleep(0.2)
    assert out.empty(), "each message was processed once, not once per instance"


async def test_removing_the_edge_detaches(net: Net) -> None:
    a, b = net.role("a"), net.role("b")
    await net.run(a)
    await net.run(b)
    out = await net.watch(f"{b}.OUT")
    marker = await net.watch(f"{a}.OUT")
    await net.graph(a, b)
    await net.until_wired()
    await net.coordinator.remove_edge(Endpoint(a, "out"), Endpoint(b, "in"))
    assert net.coordinator.attached == {}
    sender = await net.client()
    await sender.send_to(QueueKind.IN, f"{a}.IN", "gone")
    assert await get(marker) == "GONE"
    await asyncio.sleep(0.2)
    assert out.empty()


async def test_an_instance_that_cannot_be_asked_turns_the_edge_to_forwarding(net: Net) -> None:
    a, b = net.role("a"), net.role("b")
    switched = asyncio.Event()
    net.coordinator.add_listener(
        lambda e: (
            switched.set() if e.kind is EventKind.WIRED and "cannot be asked" in e.message else None
        )
    )
    await net.run(a)
    await net.run(b)
    out = await net.watch(f"{b}.OUT")
    await net.graph(a, b)
    await net.until_wired()
    assert net.coordinator.attached
    net.coordinator.control.timeout = 0.5
    device = await net.client()
    await device.register_participant(
        {
            "id": f"{b}-device",
            "role": b,
            "component": "test/Upper",
            "label": "",
            "icon": "",
            "inports": [{"id": "in", "type": "string", "queue": f"{b}.IN"}],
            "outports": [],
        }
    )
    await asyncio.wait_for(switched.wait(), WAIT)
    assert net.coordinator.attached == {}
    sender = await net.client()
    await sender.send_to(QueueKind.IN, f"{a}.IN", "once")
    assert await get(out) == "ONCE"
    await asyncio.sleep(0.2)
    assert out.empty(), "not delivered twice (attached and forwarded)"
