"""The discovery request on the memory transport: who answers, how often, and what it wires."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from msgflo.control import DISCOVER_CHANNEL, DiscoveryResponder, discovery_request
from msgflo.coordinator import Coordinator, CoordinatorOptions
from msgflo.coordinator.discovery import Arrivals
from msgflo.transport import Message, QueueKind, get_broker, get_client
from msgflo.transport.envelope import DiscoveryPayload
from tests.discovery_checks import Upper, wired_without_heartbeat


async def test_a_coordinator_started_last_wires_at_once(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await wired_without_heartbeat(f"memory://{prefix}", prefix, monkeypatch)


async def test_a_burst_of_requests_gets_one_answer_per_listener(prefix: str) -> None:
    url = f"memory://{prefix}"
    answered: list[str] = []
    clients = [get_client(url) for _ in range(3)]
    responders = []
    for i, client in enumerate(clients):
        await client.connect()

        async def announce(i: int = i) -> None:
            answered.append(f"p{i}")

        responder = DiscoveryResponder.of(client)
        await responder.add(announce)
        responders.append((responder, announce))
    asker = get_client(url)
    await asker.connect()
    for _ in range(3):
        await asker.send_raw(QueueKind.OUT, DISCOVER_CHANNEL, discovery_request(0.2))
    await asyncio.sleep(0.5)
    assert sorted(answered) == ["p0", "p1", "p2"]
    for responder, announce in responders:
        await responder.remove(announce)
    await asker.send_raw(QueueKind.OUT, DISCOVER_CHANNEL, discovery_request(0))
    await asyncio.sleep(0.1)
    assert len(answered) == 3, "a stopped responder no longer answers"


async def test_participants_sharing_a_client_all_answer(prefix: str) -> None:
    url = f"memory://{prefix}"
    broker = get_broker(url)
    await broker.connect()
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def keep(message: Message) -> None:
        seen.put_nowait(message.data["payload"]["role"])

    client = get_client(url)
    await client.connect()
    roles = [f"{prefix}p{i}" for i in range(3)]
    participants = [Upper(role) for role in roles]
    for participant in participants:
        await participant.start(client, announce=False)
    await broker.subscribe_participant_change(keep)
    await broker.send_raw(QueueKind.OUT, DISCOVER_CHANNEL, discovery_request(0.1))
    answered = [await asyncio.wait_for(seen.get(), 2) for _ in roles]
    assert sorted(answered) == roles
    for participant in participants:
        await participant.stop()


async def test_our_participant_answers_with_its_discovery_message(prefix: str) -> None:
    url = f"memory://{prefix}"
    broker = get_broker(url)
    await broker.connect()
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def keep(message: Message) -> None:
        seen.put_nowait(message.data)

    participant = Upper(f"{prefix}up")
    client = get_client(url)
    await client.connect()
    await participant.start(client)
    await broker.subscribe_participant_change(keep)
    await broker.send_raw(QueueKind.OUT, DISCOVER_CHANNEL, discovery_request(0))
    answer = await asyncio.wait_for(seen.get(), 2)
    assert answer["payload"]["role"] == f"{prefix}up"
    await participant.stop()


async def test_requests_are_rate_limited(prefix: str) -> None:
    url = f"memory://{prefix}"
    coordinator = Coordinator(get_broker(url), options=CoordinatorOptions(broker_url=url))
    await coordinator.start()  # sends the first request
    try:
        assert not await coordinator.request_discovery()
    finally:
        await coordinator.stop()


def payload(instance: str) -> DiscoveryPayload:
    return {"id": instance, "role": instance, "component": "C", "inports": [], "outports": []}


async def test_answers_arriving_together_are_taken_in_with_one_replan() -> None:
    """While one batch is being taken in, the answers that arrive wait and go in together:
    a network answering a request costs a few re-plans, not one per participant."""
    batches: list[list[str]] = []
    first_started = asyncio.Event()
    release = asyncio.Event()

    async def take_in(definitions: list[DiscoveryPayload]) -> None:
        batches.append([d["id"] for d in definitions])
        first_started.set()
        await release.wait()

    arrivals = Arrivals(take_in, lambda exc: None)
    first = arrivals.add(payload("a"), wait=True)
    await first_started.wait()
    waiting = [arrivals.add(payload(f"p{i}"), wait=True) for i in range(50)]
    release.set()
    await asyncio.gather(first, *waiting)  # type: ignore[arg-type]
    assert batches == [["a"], [f"p{i}" for i in range(50)]]


async def test_a_failed_batch_is_reported_and_the_next_still_goes_in() -> None:
    taken: list[str] = []
    failures: list[str] = []

    async def take_in(definitions: list[DiscoveryPayload]) -> None:
        if any(d["id"] == "bad" for d in definitions):
            raise RuntimeError("broken definition")
        taken.extend(d["id"] for d in definitions)

    arrivals = Arrivals(take_in, lambda exc: failures.append(str(exc)))
    bad = arrivals.add(payload("bad"), wait=True)
    assert bad is not None
    with pytest.raises(RuntimeError, match="broken definition"):
        await bad
    good = arrivals.add(payload("good"), wait=True)
    await good  # type: ignore[misc]
    assert (taken, failures) == (["good"], ["broken definition"])


async def test_a_coordinator_observing_many_at_once_wires_them_all(prefix: str) -> None:
    url = f"memory://{prefix}"
    coordinator = Coordinator(get_broker(url), options=CoordinatorOptions(broker_url=url))
    await coordinator.start()
    try:
        nodes = 40
        await coordinator.load_graph(
            {
                "processes": {f"n{i}": {"component": "C"} for i in range(nodes)},
                "connections": [
                    {
                        "src": {"process": f"n{i}", "port": "out"},
                        "tgt": {"process": f"n{i + 1}", "port": "in"},
                    }
                    for i in range(nodes - 1)
                ],
            }
        )
        definitions = [
            {
                "id": f"n{i}-1",
                "role": f"n{i}",
                "component": "C",
                "inports": [{"id": "in", "queue": f"{prefix}.n{i}.in"}],
                "outports": [{"id": "out", "queue": f"{prefix}.n{i}.out"}],
            }
            for i in range(nodes)
        ]
        await asyncio.gather(*(coordinator.observe(d) for d in definitions))
        assert await coordinator.settled(5.0)
        bound = sorted((b.src, b.tgt) for b in await coordinator.broker.list_bindings())
        assert bound == sorted(
            (f"{prefix}.n{i}.out", f"{prefix}.n{i + 1}.in") for i in range(nodes - 1)
        )
    finally:
        await coordinator.stop()
