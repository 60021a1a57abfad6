"""The discovery request on the memory transport: who answers, how often, and what it wires."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from msgflo.control import DISCOVER_CHANNEL, DiscoveryResponder, discovery_request
from msgflo.coordinator import Coordinator, CoordinatorOptions
from msgflo.transport import Message, QueueKind, get_broker, get_client
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
