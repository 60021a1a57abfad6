"""Dead letters with reasons, end to end: a participant fails, the coordinator wires its
``DEAD_IN`` port from an ``.fbp`` graph, and a recovering participant gets the payload that
failed with the reason beside it, on every broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import msgflo
import msgflo.testing
from msgflo.coordinator import Coordinator, CoordinatorOptions, Event, EventKind
from msgflo.graph.fbp import parse_fbp
from msgflo.transport import Broker, Message, QueueKind, get_broker, get_client
from tests.brokers import RABBITMQ, require_broker, url_for
from tests.integration.processes import BIN

BROKERS = [
    pytest.param("memory", id="memory"),
    pytest.param("mqtt", id="mosquitto", marks=pytest.mark.broker),
    pytest.param("mqtt5", id="mosquitto-v5", marks=pytest.mark.broker),
    pytest.param("amqp", id="rabbitmq", marks=pytest.mark.broker),
    pytest.param("nats", id="nats", marks=pytest.mark.broker),
]
WAIT = 10.0


class Fails(msgflo.Participant):
    component = "test/Fails"
    inports = {"in": "object"}
    outports = {"out": "object"}

    async def process_in(self, msg: Message) -> None:
        if msg.data.get("bad"):
            raise ValueError(f"cannot take {msg.data['bad']}")
        await self.send("out", msg.data)


class Recover(msgflo.Participant):
    component = "test/Recover"
    inports = {"in": "object"}
    outports = {"out": "object"}

    def __init__(self, role: str) -> None:
        super().__init__(role)
        self.got: asyncio.Queue[Message] = asyncio.Queue()

    async def process_in(self, msg: Message) -> None:
        self.got.put_nowait(msg)


class LegacyNack(msgflo.Participant):
    """msgflo-python style: nacks with a reason of its own."""

    def __init__(self, role: str) -> None:
        super().__init__({"component": "test/LegacyNack", "inports": [{"id": "in"}]}, role)

    def process(self, inport: str, msg: Message) -> None:  # type: ignore[override]
        self.nack(msg, reason="too old")


@pytest.fixture(params=BROKERS)
async def url(request: pytest.FixtureRequest) -> str:
    return url_for(request.param, "dead")


@pytest.fixture
async def coordinator(url: str, tmp_path: Path) -> AsyncIterator[Coordinator]:
    running = Coordinator(
        get_broker(url),
        options=CoordinatorOptions(
            broker_url=url, state_dir=tmp_path / "state", discovery_period=60, wait_timeout=30
        ),
    )
    await running.start()
    yield running
    await running.stop()


async def wired(coordinator: Coordinator) -> None:
    assert await coordinator.settled(WAIT)
    assert [p.status.value for p in coordinator.wiring.values()] == ["bound"]


async def logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """Wait for a log line (a log record tells no event to wait on)."""

    async def until() -> None:
        while text not in caplog.text:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    await asyncio.wait_for(until(), WAIT)


async def test_dead_port_edge_from_fbp_carries_payload_and_reason(
    url: str, coordinator: Coordinator, prefix: str
) -> None:
    worker, recover = f"{prefix}w", f"{prefix}r"
    graph = parse_fbp(f"{worker}(test/Fails) DEAD_IN -> IN {recover}(test/Recover)")
    await coordinator.load_graph(graph.to_json())
    failures: asyncio.Queue[Event] = asyncio.Queue()
    coordinator.add_listener(
        lambda event: failures.put_nowait(event) if event.kind is EventKind.ERROR else None
    )
    client = get_client(url)
    await client.connect()
    fails, recovers = Fails(worker), Recover(recover)
    try:
        await recovers.start(client)
        await fails.start(client)
        await wired(coordinator)
        await client.send_to(QueueKind.IN, f"{worker}.IN", {"bad": "this"})
        got = await asyncio.wait_for(recovers.got.get(), WAIT)
        assert got.data == {"bad": "this"}, "the payload that failed, unchanged"
        reason = got.reason
        assert reason is not None
        assert reason["reason"] == "error" and reason["type"] == "ValueError"
        assert reason["error"] == "cannot take this"
        assert reason["role"] == worker and reason["inport"] == "in"
        assert "process_in" in str(reason["traceback"])
        assert str(reason["time"]).startswith("20")
        failure = await asyncio.wait_for(failures.get(), WAIT)
        assert (failure.role, failure.message) == (
            worker,
            f"{worker} failed a message on in: ValueError: cannot take this",
        )
    finally:
        await fails.stop()
        await recovers.stop()
        await client.disconnect()


@pytest.mark.parametrize("kind", BROKERS)
async def test_probe_receives_dead_letters_of_a_legacy_nack(kind: str, prefix: str) -> None:
    async with msgflo.testing.participant(
        LegacyNack, f"{prefix}n", broker=url_for(kind, "dead")
    ) as p:
        await p.send("in", {"n": 1})
        assert await p.receive_dead("in") == {"n": 1}
        assert p.nacked["in"] == [{"n": 1}]


async def fail_and_park(
    client: Broker, role: str, data: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Have ``role`` (a running :class:`Fails`) fail ``data`` with no DEAD_ edge bound, and
    wait for the participant's log line that it parked the dead letter."""
    with caplog.at_level(logging.WARNING):
        await client.send_to(QueueKind.IN, f"{role}.IN", data)
        await logged(caplog, "parked in queue")


class Typed(msgflo.Participant):
    component = "test/Typed"
    inports = {"in": {"type": "object", "schema": {"type": "object", "required": ["n"]}}}
    outports = {"out": "object"}

    async def process_in(self, msg: Message) -> None:
        await self.send("out", msg.data)


@pytest.mark.parametrize("kind", BROKERS)
async def test_schema_rejects_invalid_input_on_every_broker(kind: str, prefix: str) -> None:
    async with msgflo.testing.participant(Typed, f"{prefix}t", broker=url_for(kind, "dead")) as p:
        await p.send("in", {"m": 1})
        await p.send("in", {"n": 2})
        assert await p.receive("out") == {"n": 2}
        assert await p.receive_dead("in") == {"m": 1}


@contextlib.asynccontextmanager
async def parked(
    prefix: str, name: str, data: Any, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[tuple[Broker, str, str]]:
    """A failing participant on RabbitMQ whose dead letter of ``data`` is parked because no
    edge takes it: yields the client, the role and the parking queue, and removes both queues."""
    require_broker(5672, "RabbitMQ")
    role = f"{prefix}{name}"
    client = get_broker(RABBITMQ)
    await client.connect()
    worker = Fails(role)
    queue = f"dead-{role}.IN"
    try:
        await worker.start(client)
        await fail_and_park(client, role, data, caplog)
        yield client, role, queue
    finally:
        await worker.stop()
        await client.remove_queue(QueueKind.IN, queue)
        await client.remove_queue(QueueKind.IN, f"{role}.IN")
        await client.disconnect()


@pytest.mark.broker
async def test_rabbitmq_parks_dead_letters_nothing_takes(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with parked(prefix, "park", {"bad": "nobody"}, caplog) as (client, role, queue):
        got: asyncio.Queue[Message] = asyncio.Queue()

        async def keep(message: Message) -> None:
            got.put_nowait(message)
            await client.ack_message(message)

        await client.subscribe_to_queue(queue, keep)
        message = await asyncio.wait_for(got.get(), WAIT)
        assert message.data == {"bad": "nobody"}
        assert message.reason is not None and message.reason["error"] == "cannot take nobody"
        assert f"no queue takes the dead letters of '{role}.IN'" in caplog.text


async def test_memory_logs_a_dead_letter_nothing_takes(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"memory://{prefix}"
    client = get_client(url)
    await client.connect()
    worker = Fails(f"{prefix}m")
    await worker.start(client)
    try:
        with caplog.at_level(logging.WARNING):
            await client.send_to(QueueKind.IN, f"{prefix}m.IN", {"bad": "x"})
            await logged(caplog, "nothing is bound to")
    finally:
        await worker.stop()
        await client.disconnect()


@pytest.mark.broker
async def test_dump_message_prints_a_dead_letter_with_its_reason(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with parked(prefix, "dump", {"bad": "dumped"}, caplog) as (_, _role, queue):
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "msgflo-dump-message"),
            "--broker",
            RABBITMQ,
            "-q",
            queue,
            "--timeout",
            "10",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        printed = json.loads(out)
        assert printed["data"] == {"bad": "dumped"}
        assert printed["deadletter"]["error"] == "cannot take dumped"
        assert printed["deadletter"]["type"] == "ValueError"
