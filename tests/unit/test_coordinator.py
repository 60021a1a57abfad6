"""The coordinator on the memory transport, with participants as tasks of this process."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import msgflo
from msgflo.coordinator import (
    Coordinator,
    CoordinatorError,
    CoordinatorOptions,
    Event,
    EventKind,
)
from msgflo.library import Library, LibraryConfig
from msgflo.transport import Client, Message, QueueKind, encode, get_broker, get_client
from msgflo.wiring import Endpoint, Status

TIMEOUT = 5.0


class Upper(msgflo.Participant):
    component = "test/Upper"
    inports = {"in": "string"}
    outports = {"out": "string"}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        await self.send("out", str(msg.data).upper())


class Picky(msgflo.Participant):
    """Refuses (nacks) anything that says 'bad'."""

    component = "test/Picky"
    inports = {"in": "string"}
    outports = {"out": "string"}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        if str(msg.data).lower() == "bad":
            raise ValueError("bad input")
        await self.send("out", msg.data)


class Events:
    """Collects coordinator events so a test can await the one it expects."""

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self._changed = asyncio.Condition()

    def __call__(self, event: Event) -> None:
        self.seen.append(event)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def of(self, kind: EventKind, role: str | None = None) -> list[Event]:
        return [e for e in self.seen if e.kind is kind and (role is None or e.role == role)]

    async def wait(self, predicate: Callable[[], bool], what: str) -> None:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        try:
            await asyncio.wait_for(until(), TIMEOUT)
        except TimeoutError:
            seen = "\n".join(f"{e.kind}: {e.message}" for e in self.seen)
            raise AssertionError(f"timed out waiting for {what}; events:\n{seen}") from None


class Net:
    """A coordinator plus helpers to run participants and watch queues on one memory broker."""

    def __init__(self, url: str, coordinator: Coordinator, client: Client) -> None:
        self.url = url
        self.coordinator = coordinator
        self.client = client
        self.events = Events()
        coordinator.add_listener(self.events)
        self.participants: list[msgflo.Participant] = []

    async def run(self, cls: type[msgflo.Participant], role: str) -> msgflo.Participant:
        participant = cls(role)
        await participant.start(self.client)
        self.participants.append(participant)
        return participant

    async def sink(self, exchange: str) -> asyncio.Queue[Any]:
        """Everything published on ``exchange``, through a binding of our own."""
        received: asyncio.Queue[Any] = asyncio.Queue()
        name = f"observe-{exchange}"
        broker = self.coordinator.broker
        await broker.create_queue(QueueKind.IN, name)
        await broker.add_binding(msgflo.transport.Binding(exchange, name))

        async def keep(message: Message) -> None:
            received.put_nowait(message.data)
            await broker.ack_message(message)

        await broker.subscribe_to_queue(name, keep)
        return received


@pytest.fixture
async def net(prefix: str, tmp_path: Path) -> AsyncIterator[Net]:
    url = f"memory://{prefix}"
    coordinator = Coordinator(
        get_broker(url),
        options=CoordinatorOptions(
            broker_url=url, state_dir=tmp_path / "state", discovery_period=60, wait_timeout=30
        ),
    )
    client = get_client(url)
    await client.connect()
    await coordinator.start()
    n = Net(url, coordinator, client)
    yield n
    for participant in n.participants:
        await participant.stop()
    await coordinator.stop()
    await client.disconnect()


def pipeline_graph() -> dict[str, Any]:
    return {
        "processes": {"first": {"component": "test/Upper"}, "second": {"component": "test/Upper"}},
        "connections": [
            {"data": "hello", "tgt": {"process": "first", "port": "in"}},
            {
                "src": {"process": "first", "port": "out"},
                "tgt": {"process": "second", "port": "in"},
            },
        ],
    }


async def get(queue: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(queue.get(), TIMEOUT)


async def test_graph_loads_at_once_and_pending_nodes_are_wired_when_discovered(net: Net) -> None:
    await asyncio.wait_for(net.coordinator.load_graph(pipeline_graph()), 1.0)
    assert net.coordinator.pending_roles() == ["first", "second"]
    unknown_first, unknown_second = net.events.of(EventKind.WARNING)
    assert "first" in unknown_first.message and "test/Upper" in unknown_first.message
    assert "second" in unknown_second.message
    out = await net.sink("second.OUT")

    await net.run(Upper, "first")
    await net.events.wait(lambda: bool(net.events.of(EventKind.PARTICIPANT_ADDED)), "first")
    assert net.events.of(EventKind.IIP_SENT) == [], "IIP held while its output has nowhere to go"
    await net.run(Upper, "second")

    assert await get(out) == "HELLO"
    assert net.coordinator.pending_roles() == []
    [planned] = net.coordinator.wiring.values()
    assert planned.status is Status.BOUND


async def test_iip_is_resent_to_a_new_instance_but_not_on_reannouncement(net: Net) -> None:
    await net.coordinator.load_graph(pipeline_graph())
    out = await net.sink("first.OUT")
    await net.run(Upper, "second")
    first = await net.run(Upper, "first")
    assert await get(out) == "HELLO"

    await first.announce()
    second_instance = await net.run(Upper, "first")
    assert await get(out) == "HELLO"
    await second_instance.announce()
    await first.announce()
    await net.events.wait(
        lambda: len(net.events.of(EventKind.PARTICIPANT_ADDED, "first")) == 2, "two instances"
    )
    await net.events.wait(lambda: len(net.events.of(EventKind.IIP_SENT)) >= 2, "second IIP")
    assert net.coordinator.registry.count("first") == 2
    assert len(net.events.of(EventKind.IIP_SENT)) == 2
    assert out.empty()


async def test_registry_marks_silent_participants_gone_and_back(
    prefix: str, tmp_path: Path
) -> None:
    url = f"memory://{prefix}"
    coordinator = Coordinator(
        get_broker(url), options=CoordinatorOptions(broker_url=url, discovery_period=0.05)
    )
    events = Events()
    coordinator.add_listener(events)
    await coordinator.start()
    try:
        # A node of the graph: its gone instance is remembered (it keeps its bindings).
        await coordinator.load_graph({"processes": {"w": {"component": "W"}}})
        definition = {"id": "w-1", "role": "w", "component": "W", "inports": [], "outports": []}
        await coordinator.observe(dict(definition))
        await events.wait(lambda: bool(events.of(EventKind.PARTICIPANT_GONE)), "gone")
        assert coordinator.registry.count("w") == 0
        await coordinator.observe(dict(definition))
        assert [e.kind for e in events.seen if e.kind.startswith("participant")] == [
            EventKind.PARTICIPANT_ADDED,
            EventKind.PARTICIPANT_GONE,
            EventKind.PARTICIPANT_BACK,
        ]
        assert coordinator.registry.count("w") == 1
    finally:
        await coordinator.stop()


async def test_participant_returning_with_other_ports_is_rewired(net: Net) -> None:
    graph = {
        "processes": {"a": {"component": "A"}, "b": {"component": "B"}},
        "connections": [
            {"src": {"process": "a", "port": "out"}, "tgt": {"process": "b", "port": "in"}}
        ],
    }
    await net.coordinator.load_graph(graph)
    b = {"id": "b-1", "role": "b", "component": "B", "inports": [{"id": "in", "queue": "b.IN"}]}
    await net.coordinator.observe(dict(b))
    await net.coordinator.observe(
        {"id": "a-1", "role": "a", "component": "A", "outports": [{"id": "out", "queue": "old"}]}
    )
    assert [p.binding.src for p in net.coordinator.wiring.values() if p.binding] == ["old"]
    await net.coordinator.observe(
        {"id": "a-1", "role": "a", "component": "A", "outports": [{"id": "out", "queue": "new"}]}
    )
    assert [e.kind for e in net.events.of(EventKind.PARTICIPANT_UPDATED)] == [
        EventKind.PARTICIPANT_UPDATED
    ]
    assert [p.binding.src for p in net.coordinator.wiring.values() if p.binding] == ["new"]
    assert [(b.src, b.tgt) for b in await net.coordinator.broker.list_bindings()] == [
        ("new", "b.IN")
    ]


async def test_malformed_discovery_is_tolerated_with_one_warning_per_sender(net: Net) -> None:
    microflo = {
        "protocol": "discovery",
        "command": "participant",
        "payload": {
            "role": "led",
            "component": "microflo/Led",
            "label": None,
            "icon": None,
            "inports": {"in": {"queue": "led.IN"}},
            "outports": None,
            "type": "microflo",
            "version": "0.3",
        },
    }
    broken = {
        "protocol": "discovery",
        "command": "participant",
        "payload": {"id": "x-9", "role": "x", "inports": 5},
    }
    for body in (encode(microflo), encode(broken), encode(broken), b"\xff garbage"):
        await net.client.send_discovery(body)
    await net.events.wait(
        lambda: bool(net.events.of(EventKind.PARTICIPANT_ADDED, "led")), "the MicroFlo participant"
    )
    await net.run(Upper, "after")
    await net.events.wait(
        lambda: bool(net.events.of(EventKind.PARTICIPANT_ADDED, "after")), "a later participant"
    )
    warnings = [e.message for e in net.events.of(EventKind.WARNING)]
    assert len(warnings) == 2
    assert any("x-9" in w and "inports" in w for w in warnings)
    led = net.coordinator.registry.definitions()["led"]
    assert led["id"] == "led" and led["inports"][0]["queue"] == "led.IN" and led["outports"] == []


async def test_roundrobin_balances_and_dead_letters_without_hanging(net: Net) -> None:
    graph = {
        "processes": {
            "api": {"component": "test/Upper"},
            "rr": {"component": "msgflo/RoundRobin"},
            "worker": {"component": "test/Picky"},
            "drop": {"component": "test/Upper"},
        },
        "connections": [
            {"src": {"process": "api", "port": "out"}, "tgt": {"process": "rr", "port": "in"}},
            {"src": {"process": "rr", "port": "out"}, "tgt": {"process": "worker", "port": "in"}},
            {
                "src": {"process": "rr", "port": "deadletter"},
                "tgt": {"process": "drop", "port": "in"},
            },
        ],
    }
    await asyncio.wait_for(net.coordinator.load_graph(graph), 1.0)
    assert "rr" not in net.coordinator.pending_roles()
    worked = await net.sink("worker.OUT")
    dropped = await net.sink("drop.OUT")
    for cls, role in ((Upper, "drop"), (Picky, "worker"), (Upper, "api")):
        await net.run(cls, role)
    await net.events.wait(
        lambda: any("node rr" in e.message for e in net.events.of(EventKind.WIRED)), "rr wired"
    )
    await net.client.send_to(QueueKind.IN, "api.IN", "ok")
    await net.client.send_to(QueueKind.IN, "api.IN", "bad")
    assert await get(worked) == "OK"
    assert await get(dropped) == "BAD"


async def test_dead_letter_port_edge_routes_nacked_messages(net: Net) -> None:
    graph = {
        "processes": {"worker": {"component": "test/Picky"}, "errors": {"component": "test/Upper"}},
        "connections": [
            {
                "src": {"process": "worker", "port": "dead_in"},
                "tgt": {"process": "errors", "port": "in"},
            }
        ],
    }
    await net.coordinator.load_graph(graph)
    out = await net.sink("errors.OUT")
    await net.run(Upper, "errors")
    await net.run(Picky, "worker")
    await net.events.wait(lambda: bool(net.events.of(EventKind.WIRED)), "dead-letter edge")
    await net.client.send_to(QueueKind.IN, "worker.IN", "bad")
    assert await get(out) == "BAD"


async def test_edge_to_missing_port_is_an_error_and_the_rest_runs(net: Net) -> None:
    graph = pipeline_graph()
    graph["connections"].append(
        {"src": {"process": "first", "port": "nope"}, "tgt": {"process": "second", "port": "in"}}
    )
    await net.coordinator.load_graph(graph)
    out = await net.sink("second.OUT")
    await net.run(Upper, "second")
    await net.run(Upper, "first")
    assert await get(out) == "HELLO"
    [error] = net.events.of(EventKind.ERROR)
    assert "first" in error.message and "'nope'" in error.message
    with pytest.raises(CoordinatorError, match="'nope'"):
        await net.coordinator.add_edge(Endpoint("first", "nope"), Endpoint("second", "in"))


async def test_graph_operations(net: Net) -> None:
    await net.coordinator.load_graph({"processes": {}, "connections": []})
    await net.coordinator.add_node("a", "test/Upper")
    await net.coordinator.add_node("b", "test/Upper")
    with pytest.raises(CoordinatorError, match="already exists"):
        await net.coordinator.add_node("a", "test/Upper")
    await net.run(Upper, "a")
    await net.run(Upper, "b")
    await net.events.wait(lambda: len(net.events.of(EventKind.PARTICIPANT_ADDED)) == 2, "a and b")
    out = await net.sink("b.OUT")
    planned = await net.coordinator.add_edge(Endpoint("a", "out"), Endpoint("b", "in"))
    assert planned.status is Status.BOUND
    await net.coordinator.watch_edge(planned.edges[0])
    await net.coordinator.add_initial(Endpoint("a", "in"), "live")
    assert await get(out) == "LIVE"
    await net.events.wait(lambda: bool(net.events.of(EventKind.DATA)), "edge data")
    assert net.events.of(EventKind.DATA)[0].data["data"] == "LIVE"

    await net.coordinator.remove_edge(Endpoint("a", "out"), Endpoint("b", "in"))
    assert await net.coordinator.broker.list_bindings() == [
        msgflo.transport.Binding("b.OUT", "observe-b.OUT")
    ]
    await net.coordinator.remove_node("a")
    with pytest.raises(CoordinatorError, match="no node 'a'"):
        await net.coordinator.remove_node("a")


async def test_restarted_coordinator_knows_the_network_from_its_state_dir(
    prefix: str, tmp_path: Path
) -> None:
    url = f"memory://{prefix}"
    state = tmp_path / "state"
    first = Coordinator(
        get_broker(url), options=CoordinatorOptions(broker_url=url, state_dir=state)
    )
    await first.start()
    for role in ("a", "b"):
        await first.observe(
            {
                "id": f"{role}-1",
                "role": role,
                "component": "X",
                "inports": [{"id": "in", "queue": f"{role}-in"}],
                "outports": [{"id": "out", "queue": f"{role}-out"}],
            }
        )
    await first.stop()

    second = Coordinator(
        get_broker(url), options=CoordinatorOptions(broker_url=url, state_dir=state)
    )
    await second.start()
    try:
        assert second.registry.count("a") == 1
        await second.load_graph(
            {
                "processes": {"a": {"component": "X"}, "b": {"component": "X"}},
                "connections": [
                    {"src": {"process": "a", "port": "out"}, "tgt": {"process": "b", "port": "in"}}
                ],
            }
        )
        [planned] = second.wiring.values()
        assert planned.binding is not None and (planned.binding.src, planned.binding.tgt) == (
            "a-out",
            "b-in",
        )
    finally:
        await second.stop()


async def test_a_participant_that_exits_at_once_is_retried_then_reported(
    prefix: str, tmp_path: Path
) -> None:
    url = f"memory://{prefix}"
    command = (
        f"{sys.executable} -c \"import sys; print('no config', file=sys.stderr); sys.exit(3)\""
    )
    library = Library(LibraryConfig(components={"Crash": command}), componentdirs=[], root=tmp_path)
    coordinator = Coordinator(
        get_broker(url),
        library,
        CoordinatorOptions(broker_url=url, max_failures=2, backoff_base=0.01),
    )
    events = Events()
    coordinator.add_listener(events)
    await coordinator.start()
    try:
        await coordinator.load_graph(
            {"processes": {"c": {"component": "Crash"}}, "connections": []}
        )
        await events.wait(lambda: bool(events.of(EventKind.ERROR)), "giving up")
        [error] = events.of(EventKind.ERROR)
        assert sys.executable in error.message and "no config" in error.message
        assert "exited with code 3" in error.message
        assert len(events.of(EventKind.PROCESS_STARTED)) == 3
        delays = [e.data["delay"] for e in events.of(EventKind.PROCESS_EXITED)]
        assert delays == [0.01, 0.02]
    finally:
        await coordinator.stop()


async def test_children_are_stopped_with_the_coordinator(prefix: str, tmp_path: Path) -> None:
    url = f"memory://{prefix}"
    command = f"{sys.executable} -c \"import time; print('up', flush=True); time.sleep(60)\""
    library = Library(
        LibraryConfig(components={"Sleepy": command}), componentdirs=[], root=tmp_path
    )
    coordinator = Coordinator(get_broker(url), library, CoordinatorOptions(broker_url=url))
    events = Events()
    coordinator.add_listener(events)
    await coordinator.start()
    await coordinator.load_graph(
        {
            "processes": {"s": {"component": "Sleepy"}, "t": {"component": "Sleepy"}},
            "connections": [],
        }
    )
    await events.wait(lambda: len(events.of(EventKind.PROCESS_READY)) == 2, "both ready")
    pids = [pid for pids in coordinator.child_pids().values() for pid in pids]
    assert len(pids) == 2
    await coordinator.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_tap_sees_what_an_outport_sends_from_the_moment_it_is_known(net: Net) -> None:
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def keep(ref: Endpoint, data: Any) -> None:
        seen.put_nowait((ref, data))

    await net.coordinator.tap(Endpoint("second", "out"), keep)  # before "second" exists
    await net.coordinator.load_graph(pipeline_graph())
    await net.run(Upper, "first")
    await net.run(Upper, "second")
    assert await get(seen) == (Endpoint("second", "out"), "HELLO")

    await net.coordinator.untap(Endpoint("second", "out"), keep)
    out = await net.sink("second.OUT")
    await net.coordinator.send(Endpoint("first", "in"), "more")
    assert await get(out) == "MORE"
    assert seen.empty(), "nothing reaches a removed tap"


async def test_send_needs_a_known_participant_and_port(net: Net) -> None:
    with pytest.raises(CoordinatorError, match="nobody has not announced itself yet"):
        await net.coordinator.send(Endpoint("nobody", "in"), 1)
    await net.run(Upper, "first")
    await net.events.wait(lambda: bool(net.events.of(EventKind.PARTICIPANT_ADDED)), "first")
    with pytest.raises(CoordinatorError, match="cannot send to"):
        await net.coordinator.send(Endpoint("first", "nope"), 1)
    out = await net.sink("first.OUT")
    await net.coordinator.send(Endpoint("first", "in"), "direct")
    assert await get(out) == "DIRECT"
