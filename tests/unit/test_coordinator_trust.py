"""The coordinator against forged, malformed and stale discovery, on the memory transport:
wiring follows the live instances, bad messages cost one line, the registry forgets, and a node
whose component nobody knows holds no IIPs back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from msgflo.coordinator import Coordinator, CoordinatorOptions, EventKind, normalize_discovery
from msgflo.library import Library, LibraryConfig
from msgflo.transport import Client, encode, get_broker, get_client
from tests.unit.test_coordinator import TIMEOUT, Events, Upper


def envelope(payload: Any) -> dict[str, Any]:
    return {"protocol": "discovery", "command": "participant", "payload": payload}


def announcement(id_: str, role: str, out: str, inq: str | None = None) -> dict[str, Any]:
    return envelope(
        {
            "id": id_,
            "role": role,
            "component": "X",
            "inports": [{"id": "in", "queue": inq or f"{role}.IN"}],
            "outports": [{"id": "out", "queue": out}],
        }
    )


EDGE = {
    "processes": {"a": {"component": "X"}, "b": {"component": "X"}},
    "connections": [
        {"src": {"process": "a", "port": "out"}, "tgt": {"process": "b", "port": "in"}}
    ],
}


@contextlib.asynccontextmanager
async def coordinating(
    prefix: str, period: float = 60.0, library: Library | None = None
) -> AsyncIterator[tuple[Coordinator, Events, Client]]:
    url = f"memory://{prefix}"
    coordinator = Coordinator(
        get_broker(url),
        library,
        CoordinatorOptions(broker_url=url, discovery_period=period, wait_timeout=30),
    )
    events = Events()
    coordinator.add_listener(events)
    client = get_client(url)
    await client.connect()
    await coordinator.start()
    try:
        yield coordinator, events, client
    finally:
        await coordinator.stop()
        await client.disconnect()


def sources(coordinator: Coordinator) -> list[str]:
    return [p.binding.src for p in coordinator.wiring.values() if p.binding is not None]


async def until(condition: Any, what: str) -> None:
    """Registry and wiring state change on timers (expiry) that send no event: poll, bounded."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def keep_announcing(client: Client, message: dict[str, Any], every: float) -> None:
    while True:
        await client.send_discovery(encode(message))
        await asyncio.sleep(every)


def ready_count(events: Events, kind: EventKind, count: int) -> Callable[[], bool]:
    """A condition: ``count`` events of ``kind`` about node ``c`` have arrived."""
    return lambda: len(events.of(kind, "c")) == count


async def test_a_forged_newcomer_never_takes_an_edge_from_a_live_participant(prefix: str) -> None:
    async with coordinating(prefix) as (coordinator, events, client):
        await coordinator.load_graph(EDGE)
        await coordinator.observe(normalize_discovery(announcement("b-1", "b", "b.OUT"))[0] or {})
        await coordinator.observe(normalize_discovery(announcement("a-1", "a", "a.OUT"))[0] or {})
        assert sources(coordinator) == ["a.OUT"]
        await client.send_discovery(encode(announcement("a-forged", "a", "elsewhere")))

        def winners() -> list[str]:
            return [
                e.message for e in events.of(EventKind.WARNING, "a") if "other queues" in e.message
            ]

        await events.wait(lambda: bool(winners()), "which one wins")
        [said] = winners()
        assert said.startswith("a: a-forged announce other queues than a-1; wiring follows a-1")
        assert "announcing longest" in said
        assert sources(coordinator) == ["a.OUT"]
        assert [(b.src, b.tgt) for b in await coordinator.broker.list_bindings()] == [
            ("a.OUT", "b.IN")
        ]


async def test_an_edge_moved_by_a_stale_instance_comes_back_when_it_expires(prefix: str) -> None:
    """The stale (or forged) instance came first and won; it goes silent while the real
    participant keeps announcing: the edge follows the real one by itself."""
    async with coordinating(prefix, period=0.2) as (coordinator, events, client):
        await coordinator.load_graph(EDGE)
        real_b = asyncio.create_task(keep_announcing(client, announcement("b-1", "b", "x"), 0.1))
        await client.send_discovery(encode(announcement("a-stale", "a", "stale.OUT")))
        await until(lambda: sources(coordinator) == ["stale.OUT"], "the stale one wired")
        real_a = asyncio.create_task(
            keep_announcing(client, announcement("a-1", "a", "a.OUT"), 0.1)
        )
        try:
            await until(lambda: sources(coordinator) == ["a.OUT"], "the edge to come back")
            await until(
                lambda: "a-stale" not in coordinator.registry.instances, "the stale one forgotten"
            )
            assert [(b.src, b.tgt) for b in await coordinator.broker.list_bindings()] == [
                ("a.OUT", "b.IN")
            ]
            gone = [e.message for e in events.of(EventKind.PARTICIPANT_GONE, "a")]
            assert gone == ["a: participant a-stale gone (silent for 0.6 s)"]
        finally:
            real_a.cancel()
            real_b.cancel()


async def test_a_forged_update_of_a_live_instance_is_undone_by_its_next_announcement(
    prefix: str,
) -> None:
    async with coordinating(prefix) as (coordinator, _, client):
        await coordinator.load_graph(EDGE)
        for message in (announcement("b-1", "b", "x"), announcement("a-1", "a", "a.OUT")):
            await client.send_discovery(encode(message))
        await until(lambda: sources(coordinator) == ["a.OUT"], "wired")
        await client.send_discovery(encode(announcement("a-1", "a", "forged")))
        await until(lambda: sources(coordinator) == ["forged"], "the forgery applied")
        await client.send_discovery(encode(announcement("a-1", "a", "a.OUT")))
        await until(lambda: sources(coordinator) == ["a.OUT"], "the edge back")


FORGED: list[tuple[Any, str]] = [
    ({"id": "q-1", "role": "q", "inports": [{"id": "in", "queue": {"a": 1}}]}, "inports[0].queue"),
    ({"id": "r-1", "role": "r\nmsgflo: all good", "inports": []}, "role"),
    ({"id": 7, "role": "s"}, "id must be a string"),
    ({"id": "t-1", "role": "t", "component": ["x"]}, "component must be a string"),
    ({"id": "u-1", "role": "u", "outports": ["out"]}, "outports[0] must be a port object"),
    ({"id": "v-1", "role": "v", "inports": [{"queue": "v.IN"}]}, "inports[0] has no id"),
    ({"id": "w-1", "role": "w", "label": {"text": "hi"}}, "label must be a string"),
    ({"id": "y-1", "role": "y", "outports": [{"id": "out", "type": 5}]}, "outports[0].type"),
    ({"id": "z-1", "role": "z", "inports": [{"id": "in\x1b[2J", "queue": "z"}]}, "inports[0].id"),
]


@pytest.mark.parametrize(("payload", "named"), FORGED)
def test_every_field_of_a_discovery_message_is_checked(payload: Any, named: str) -> None:
    definition, why = normalize_discovery(envelope(payload))
    assert definition is None
    assert named in why
    assert "\n" not in why and "\x1b" not in why


def test_free_text_with_control_characters_is_escaped_not_printed() -> None:
    definition, _ = normalize_discovery(
        envelope({"id": "l-1", "role": "l", "label": "two\nlines\u2028here", "icon": None})
    )
    assert definition is not None
    assert definition["label"] == "two\\nlines\\u2028here"
    assert definition["icon"] == ""


async def test_forged_discovery_costs_one_line_each_and_is_never_registered(prefix: str) -> None:
    async with coordinating(prefix) as (coordinator, events, client):
        for _ in range(3):  # repeated: still one line per sender and reason
            for payload, _named in FORGED:
                await client.send_discovery(encode(envelope(payload)))
        await client.send_discovery(encode(announcement("ok-1", "ok", "ok.OUT")))
        await events.wait(lambda: bool(events.of(EventKind.PARTICIPANT_ADDED)), "a good one")
        assert list(coordinator.registry.instances) == ["ok-1"]
        warnings = [e.message for e in events.of(EventKind.WARNING)]
        assert len(warnings) == len(FORGED), warnings
        assert all("\n" not in w and "\x1b" not in w for w in warnings)
        assert any("r\\nmsgflo: all good" in w or "r-1" in w for w in warnings)


async def test_a_flood_of_forged_senders_is_capped(prefix: str) -> None:
    async with coordinating(prefix) as (coordinator, events, client):
        for n in range(200):
            await client.send_discovery(encode(envelope({"id": f"f-{n}", "inports": 5})))
        await client.send_discovery(encode(announcement("ok-1", "ok", "ok.OUT")))
        await events.wait(lambda: bool(events.of(EventKind.PARTICIPANT_ADDED)), "a good one")
        warnings = [e.message for e in events.of(EventKind.WARNING)]
        assert len(warnings) == 21
        assert "not warning about more" in warnings[-1]
        assert list(coordinator.registry.instances) == ["ok-1"]


async def test_the_registry_forgets_instances_that_are_gone(prefix: str, tmp_path: Path) -> None:
    library = Library(LibraryConfig(), componentdirs=[], root=tmp_path)
    async with coordinating(prefix, period=0.1, library=library) as (coordinator, events, client):
        await coordinator.load_graph({"processes": {"kept": {"component": "K"}}})
        label = "x" * 20_000
        for n in range(2000):
            message = announcement(f"big-{n}", f"big{n}", "o")
            message["payload"]["label"] = label
            message["payload"]["component"] = f"Big{n}"
            await client.send_discovery(encode(message))
        for n in range(3):
            await client.send_discovery(encode(announcement(f"kept-{n}", "kept", "k")))
        await until(lambda: len(events.of(EventKind.PARTICIPANT_ADDED)) == 2003, "all registered")
        instances = coordinator.registry.instances
        await until(
            lambda: len(instances) == 1 and all(i.gone for i in instances.values()),
            "all forgotten",
        )
        # The node of the graph keeps one gone instance (its bindings stay for its return).
        [kept] = coordinator.registry.instances.values()
        assert kept.role == "kept" and kept.gone
        assert not [name for name in library.names() if name.startswith("Big")]
        await coordinator.load_graph({"processes": {}})
        await until(lambda: not coordinator.registry.instances, "the registry empty")


async def test_a_child_seen_to_exit_is_not_counted(prefix: str, tmp_path: Path) -> None:
    """Its participant never says goodbye; the coordinator saw the process end, so the count
    drops at once instead of after three silent discovery periods."""
    command = f'{sys.executable} -c "import time; print(1, flush=True); time.sleep(1.0)"'
    library = Library(LibraryConfig(components={"Short": command}), componentdirs=[], root=tmp_path)
    async with coordinating(prefix, library=library) as (coordinator, events, client):
        await coordinator.load_graph({"processes": {"c": {"component": "Short"}}})
        for run in (1, 2):
            await events.wait(ready_count(events, EventKind.PROCESS_READY, run), "started")
            await client.send_discovery(encode(announcement(f"c-{run}", "c", "c.OUT")))
            await until(lambda: coordinator.registry.count("c") == 1, "one running")
            await events.wait(ready_count(events, EventKind.PARTICIPANT_GONE, run), "exit")
            assert coordinator.registry.count("c") == 0
        gone = [e.message for e in events.of(EventKind.PARTICIPANT_GONE, "c")]
        assert gone == [f"c: participant c-{n} gone (its process exited)" for n in (1, 2)]


async def test_a_stopped_role_is_gone_before_its_process_ends(prefix: str, tmp_path: Path) -> None:
    """A network stopped and started again at once (what FBP clients and fbp-spec do) must not
    wire the new participants past the old ones, which are still shutting down and would never
    answer: the coordinator counts what it stops as gone when it decides to stop it."""
    command = (
        f'{sys.executable} -c "import signal, time; signal.signal(signal.SIGTERM, lambda *a: None); '
        'print(1, flush=True); time.sleep(60)"'
    )
    library = Library(LibraryConfig(components={"Slow": command}), componentdirs=[], root=tmp_path)
    async with coordinating(prefix, library=library) as (coordinator, events, client):
        await coordinator.load_graph({"processes": {"c": {"component": "Slow"}}})
        await events.wait(ready_count(events, EventKind.PROCESS_READY, 1), "started")
        await client.send_discovery(encode(announcement("c-1", "c", "c.OUT")))
        await until(lambda: coordinator.registry.count("c") == 1, "one running")
        [pid] = coordinator.supervisor.pids()["c"]
        await coordinator.load_graph({"processes": {}})
        os.kill(pid, 0)  # still shutting down (it ignores SIGTERM) ...
        assert coordinator.registry.count("c") == 0  # ... and already counted out
        assert coordinator.registry.consumers_of("c.IN") == []
        [gone] = [e.message for e in events.of(EventKind.PARTICIPANT_GONE, "c")]
        assert gone == "c: participant c-1 gone (stopped: its node left the graph)"


async def test_a_typod_component_holds_no_iips_back(prefix: str, tmp_path: Path) -> None:
    command = f'{sys.executable} -c "import time; print(1, flush=True); time.sleep(60)"'
    library = Library(LibraryConfig(components={"Known": command}), componentdirs=[], root=tmp_path)
    graph: dict[str, Any] = {
        "processes": {"a": {"component": "Known"}, "b": {"component": "Knwon"}},
        "connections": [
            {"data": "go", "tgt": {"process": "a", "port": "in"}},
            {"src": {"process": "a", "port": "out"}, "tgt": {"process": "b", "port": "in"}},
        ],
    }
    async with coordinating(prefix, library=library) as (coordinator, events, client):
        await coordinator.load_graph(graph)
        upper = Upper("a")
        await upper.start(client)
        try:
            await events.wait(lambda: bool(events.of(EventKind.IIP_SENT, "a")), "the IIP")
            [planned] = coordinator.wiring.values()
            assert planned.status.value == "pending"
        finally:
            await upper.stop()
        # A known component that has not announced itself still holds them (it is coming).
        graph["processes"]["b"]["component"] = "Known"
        await coordinator.load_graph(graph)
        second = Upper("a")
        await second.start(client)
        try:
            await events.wait(
                lambda: len(events.of(EventKind.PARTICIPANT_ADDED, "a")) == 2, "the second a"
            )
            await asyncio.sleep(0.3)
            assert len(events.of(EventKind.IIP_SENT, "a")) == 1
        finally:
            await second.stop()
