"""Participant behaviour on the memory transport: both API styles, errors, discovery."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest

import msgflo
from msgflo.definition import normalize_definition, queue_name
from msgflo.transport import Message, QueueKind, get_broker


class Upper(msgflo.Participant):
    """Upper-cases text"""

    component = "demo/Upper"
    inports = {"in": "string"}
    outports = {"out": "string", "error": "object"}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        await self.send("out", msg.data.upper())


class LegacyRepeat(msgflo.Participant):
    def __init__(self, role: str) -> None:
        d = {
            "component": "PythonRepeat",
            "label": "Repeat input data without change",
            "inports": [{"id": "in", "type": "any"}],
            "outports": [{"id": "out", "type": "any"}],
        }
        msgflo.Participant.__init__(self, d, role)
        self.thread_names: list[str] = []

    def process(self, inport: str, msg: Any) -> None:  # type: ignore[override]  # the legacy API's synchronous process, run in a thread
        self.thread_names.append(threading.current_thread().name)
        self.send("out", msg.data)
        self.ack(msg)


@msgflo.component(inports={"in": "number"}, outports={"out": "number"})
async def double(data: float) -> dict[str, float]:
    return {"out": data * 2}


async def test_modern_participant_processes_and_keeps_order() -> None:
    async with msgflo.testing.participant(Upper) as p:
        for word in ["abc", "def", "ghi"]:
            await p.send("in", word)
        assert [await p.receive("out") for _ in range(3)] == ["ABC", "DEF", "GHI"]


async def test_decorated_function_is_a_participant() -> None:
    async with msgflo.testing.participant(double, "dbl") as p:
        await p.send("in", 21)
        assert await p.receive("out") == 42
    assert double.__name__ == "double"


async def test_failing_process_reports_error_and_keeps_running() -> None:
    async with msgflo.testing.participant(Upper) as p:
        await p.send("in", 5)  # int has no upper()
        report = await p.receive("error")
        assert report["type"] == "AttributeError"
        assert report["inport"] == "in"
        assert report["data"] == 5
        await p.send("in", "still alive")
        assert await p.receive("out") == "STILL ALIVE"


async def test_legacy_participant_runs_on_one_worker_thread_with_slash_queues() -> None:
    async with msgflo.testing.participant(LegacyRepeat, "rep") as p:
        assert p.participant.inport("in")["queue"] == "rep/in"
        assert p.participant.outport("out")["queue"] == "rep/out"
        for i in range(20):
            await p.send("in", {"n": i})
        assert [await p.receive("out") for _ in range(20)] == [{"n": i} for i in range(20)]
        names = set(p.participant.thread_names)  # type: ignore[attr-defined]
        assert len(names) == 1 and names != {threading.current_thread().name}


class Sleepy(msgflo.Participant):
    def __init__(self, role: str) -> None:
        msgflo.Participant.__init__(self, {"component": "Sleepy"}, role)

    def process(self, inport: str, msg: Any) -> None:  # type: ignore[override]  # the legacy API's synchronous process, run in a thread
        time.sleep(0.3)  # blocking user code
        self.send("out", msg.data)
        self.ack(msg)


async def test_blocking_legacy_process_does_not_stall_the_event_loop() -> None:
    async with msgflo.testing.participant(Sleepy, "sl") as p:
        await p.send("in", 1)
        ticks = 0
        start = time.monotonic()
        while time.monotonic() - start < 0.2:
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks >= 10  # the loop kept turning while process() slept
        assert await p.receive("out") == 1


class LegacyNacker(msgflo.Participant):
    def __init__(self, role: str) -> None:
        msgflo.Participant.__init__(self, {"component": "Nacker"}, role)

    def process(self, inport: str, msg: Any) -> None:  # type: ignore[override]  # the legacy API's synchronous process, run in a thread
        if msg.data == "bad":
            self.nack(msg)
            return
        self.send("out", msg.data)
        self.ack(msg)


async def test_legacy_nack_dead_letters_on_memory_transport() -> None:
    url = f"memory://dl-{uuid.uuid4().hex}"
    broker = get_broker(url)
    await broker.connect()
    dead: list[Any] = []
    got = asyncio.Event()

    async def on_dead(message: Message) -> None:
        dead.append(message.data)
        await broker.ack_message(message)
        got.set()

    await broker.create_queue(QueueKind.IN, "dead-nk/in")
    await broker.subscribe_to_queue("dead-nk/in", on_dead)
    async with msgflo.testing.participant(LegacyNacker, "nk", broker=url) as p:
        await p.send("in", "bad")
        await p.send("in", "good")
        assert await p.receive("out") == "good"
        await asyncio.wait_for(got.wait(), 5)
    assert dead == ["bad"]
    await broker.disconnect()


async def test_discovery_message_has_exactly_the_original_keys() -> None:
    url = f"memory://disc-{uuid.uuid4().hex}"
    broker = get_broker(url)
    await broker.connect()
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def on_discovery(message: Message) -> None:
        seen.put_nowait(message.data)

    await broker.subscribe_participant_change(on_discovery)
    async with msgflo.testing.participant(Upper, "up", broker=url):
        envelope = await asyncio.wait_for(seen.get(), 5)
    assert set(envelope) == {"protocol", "command", "payload"}
    assert envelope["protocol"] == "discovery" and envelope["command"] == "participant"
    payload = envelope["payload"]
    assert set(payload) == {"id", "role", "component", "label", "icon", "inports", "outports"}
    assert payload["role"] == "up" and payload["component"] == "demo/Upper"
    assert payload["id"].startswith("up-") and len(payload["id"]) > 5
    assert payload["label"] == "Upper-cases text"
    assert payload["inports"] == [
        {"id": "in", "type": "string", "queue": "up.IN", "deadletter": "dead-up.IN"}
    ]
    assert [p["queue"] for p in payload["outports"]] == ["up.OUT", "up.ERROR"]
    await broker.disconnect()


async def test_heartbeat_repeats_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGFLO_DISCOVERY_PERIOD", "0.22")  # a beat every 0.1 s
    url = f"memory://hb-{uuid.uuid4().hex}"
    broker = get_broker(url)
    await broker.connect()
    count = 0
    three = asyncio.Event()

    async def on_discovery(message: Message) -> None:
        nonlocal count
        count += 1
        if count == 3:
            three.set()

    await broker.subscribe_participant_change(on_discovery)
    async with msgflo.testing.participant(Upper, "hb", broker=url):
        await asyncio.wait_for(three.wait(), 2)
    await broker.disconnect()


async def test_command_line_iips_go_through_process() -> None:
    async with msgflo.testing.participant(Upper, "iip") as p:
        await p.participant.deliver("in", "config")
        assert await p.receive("out") == "CONFIG"


async def test_per_port_methods() -> None:
    class Router(msgflo.Participant):
        component = "Router"
        inports = {"a": "any", "b": "any"}
        outports = {"out": "any"}

        async def process_a(self, msg: Message) -> None:
            await self.send("out", ["a", msg.data])

        async def process_b(self, msg: Message) -> None:
            await self.send("out", ["b", msg.data])

    async with msgflo.testing.participant(Router, "r") as p:
        await p.send("b", 2)
        assert await p.receive("out") == ["b", 2]
        await p.send("a", 1)
        assert await p.receive("out") == ["a", 1]


async def test_unknown_outport_is_an_error_naming_the_ports() -> None:
    class Wrong(msgflo.Participant):
        component = "Wrong"

        async def process(self, port: str, msg: Message) -> None:
            await self.send("nope", msg.data)

    async with msgflo.testing.participant(Wrong, "w") as p:
        with pytest.raises(KeyError, match="has: out"):
            await p.participant.send("nope", 1)


def test_normalize_definition_fills_defaults_without_mutating() -> None:
    given = {"component": "X", "inports": [{"id": "in"}]}
    result = normalize_definition(given, "role")
    assert given == {"component": "X", "inports": [{"id": "in"}]}
    assert result["inports"] == [{"id": "in", "type": "any", "queue": "role.IN"}]
    assert result["outports"] == [{"id": "out", "type": "any", "queue": "role.OUT"}]
    assert result["icon"] == "file-word-o" and result["label"] == ""


def test_hidden_ports_get_no_queue_and_are_not_announced() -> None:
    result = normalize_definition(
        {"inports": [{"id": "in"}, {"id": "tick", "hidden": True}]}, "src"
    )
    assert [p["id"] for p in result["inports"]] == ["in"]


def test_explicit_queue_is_kept() -> None:
    result = normalize_definition({"inports": [{"id": "in", "queue": "/dev/door"}]}, "d")
    assert result["inports"][0]["queue"] == "/dev/door"


def test_queue_name_conventions() -> None:
    assert queue_name("repeat", "in") == "repeat.IN"
    assert queue_name("repeat", "in", legacy=True) == "repeat/in"


def test_role_is_required() -> None:
    with pytest.raises(ValueError, match="role"):
        normalize_definition({}, "")
