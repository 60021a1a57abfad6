"""Several copies of a role under one supervisor, and the local autoscaler driving them, on the
in-memory broker (the copies are plain processes here: the broker's queue is what scales)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from msgflo.cli.msgflo import main
from msgflo.coordinator import Coordinator, CoordinatorOptions, Event, EventKind, SupervisorOptions
from msgflo.coordinator.autoscaler import Autoscaler, starting_instances
from msgflo.coordinator.events import Events
from msgflo.coordinator.supervisor import Supervisor
from msgflo.deploy.autoscale import RoleScaling, parse_config
from msgflo.library import Library, LibraryConfig
from msgflo.transport import Message, QueueDepth, QueueKind, get_broker, get_client

TIMEOUT = 10.0
SLEEPY = f"{sys.executable} -c \"import time; print('up', flush=True); time.sleep(60)\""


def first_one_lives(tmp_path: Path) -> str:
    """A command whose first copy runs and every later copy crashes at start."""
    script = tmp_path / "lonely.py"
    script.write_text(
        "import os, sys, time\n"
        f"try:\n    os.close(os.open({str(tmp_path / 'lock')!r}, os.O_CREAT | os.O_EXCL))\n"
        "except FileExistsError:\n    sys.exit('not the first')\n"
        "print('up', flush=True)\ntime.sleep(60)\n"
    )
    return f"{sys.executable} {script}"


class Seen:
    """Events kept so a test can await the one it expects."""

    def __init__(self, events: Events) -> None:
        self.seen: list[Event] = []
        self._changed = asyncio.Event()
        events.add(self)

    def __call__(self, event: Event) -> None:
        self.seen.append(event)
        self._changed.set()

    def of(self, kind: EventKind) -> list[Event]:
        return [e for e in self.seen if e.kind is kind]

    async def wait(self, predicate: Callable[[], bool], what: str) -> None:
        async def until() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(until(), TIMEOUT)
        except TimeoutError:
            lines = "\n".join(f"{e.kind}: {e.message}" for e in self.seen)
            raise AssertionError(f"timed out waiting for {what}; events:\n{lines}") from None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def supervisor(tmp_path: Path) -> Supervisor:
    components = {"Sleepy": SLEEPY, "Lonely": first_one_lives(tmp_path)}
    library = Library(LibraryConfig(components=components), componentdirs=[], root=tmp_path)
    options = SupervisorOptions(broker_url="memory://x", max_failures=1, backoff_base=0.01)
    return Supervisor(library, options, Events(), instances={"s": 3, "lonely": 3})


async def test_copies_of_a_role_are_numbered_counted_and_stopped(supervisor: Supervisor) -> None:
    seen = Seen(supervisor.events)
    supervisor.start("s", "Sleepy", iips={})
    try:
        await seen.wait(lambda: len(seen.of(EventKind.PROCESS_READY)) == 3, "three copies")
        assert supervisor.count("s") == 3
        assert {e.message.split(":")[0] for e in seen.of(EventKind.PROCESS_READY)} == {
            "s",
            "s[2]",
            "s[3]",
        }
        first = supervisor.pids()["s"]
        supervisor.scale("s", 1)
        assert supervisor.count("s") == 1
        assert [child.index for child in supervisor.children["s"].children] == [1]
        supervisor.scale("s", 2)
        assert [child.index for child in supervisor.children["s"].children] == [1, 2]
        await seen.wait(lambda: len(seen.of(EventKind.PROCESS_READY)) == 4, "a new second copy")
        await seen.wait(lambda: sum(map(alive, first)) == 1, "the surplus copies stopped")
        assert supervisor.count("other") is None
    finally:
        await supervisor.stop()
    assert not any(alive(pid) for pid in supervisor.pids()["s"])


async def test_a_given_up_copy_keeps_its_slot_and_is_stopped_first(
    supervisor: Supervisor,
) -> None:
    seen = Seen(supervisor.events)
    supervisor.start("lonely", "Lonely", iips={})
    try:
        await seen.wait(lambda: len(seen.of(EventKind.ERROR)) == 2, "two copies given up")
        group = supervisor.children["lonely"]
        assert supervisor.count("lonely") == 3 and not group.failed
        [healthy] = [child for child in group.children if not child.failed]
        assert "not the first" in seen.of(EventKind.ERROR)[0].message
        supervisor.scale("lonely", 1)
        assert group.children == [healthy]
        assert healthy.process is not None and healthy.process.returncode is None
    finally:
        await supervisor.stop()


async def test_memory_queue_depth_counts_what_waits_not_what_is_handled(prefix: str) -> None:
    client = get_client(f"memory://{prefix}")
    await client.connect()
    try:
        assert await client.queue_depth(f"{prefix}.none") is None
        queue = f"{prefix}.IN"
        await client.create_queue(QueueKind.IN, queue)
        for n in range(5):
            await client.send_to(QueueKind.IN, queue, n)
        assert await client.queue_depth(queue) == QueueDepth(5, 0)
        handling = asyncio.Event()

        async def hold(message: Message) -> None:
            handling.set()
            await asyncio.sleep(60)

        await client.subscribe_to_queue(queue, hold)
        await asyncio.wait_for(handling.wait(), TIMEOUT)
        assert await client.queue_depth(queue) == QueueDepth(4, 1)
    finally:
        await client.disconnect()


def scaling_for(role: str, queue: str, settings: str) -> RoleScaling:
    [entry] = parse_config(f"{role}: {{{settings}}}").values()
    return dataclasses.replace(entry, queue=queue)


async def scaled_network(
    url: str, tmp_path: Path, component: str, scaling: RoleScaling
) -> tuple[Coordinator, Autoscaler, Seen]:
    components = {"Sleepy": SLEEPY, "Lonely": first_one_lives(tmp_path)}
    library = Library(LibraryConfig(components=components), componentdirs=[], root=tmp_path)
    options = CoordinatorOptions(
        broker_url=url,
        max_failures=1,
        backoff_base=0.01,
        instances=starting_instances([scaling]),
    )
    coordinator = Coordinator(get_broker(url), library, options)
    seen = Seen(coordinator.events)
    await coordinator.start()
    await coordinator.load_graph(
        {"processes": {scaling.worker: {"component": component}}, "connections": []}
    )
    scaler = Autoscaler(coordinator.broker, coordinator.supervisor, coordinator.events, [scaling])
    return coordinator, scaler, seen


@pytest.fixture
async def queued(prefix: str) -> AsyncIterator[tuple[str, str]]:
    """A memory broker with 30 messages waiting in ``PREFIX.IN``."""
    url, queue = f"memory://{prefix}", f"{prefix}.IN"
    client = get_client(url)
    await client.connect()
    await client.create_queue(QueueKind.IN, queue)
    for n in range(30):
        await client.send_to(QueueKind.IN, queue, n)
    yield url, queue
    await client.disconnect()


def targets(seen: Seen) -> list[int]:
    return [e.data["next"] for e in seen.of(EventKind.AUTOSCALE) if e.data["next"] is not None]


async def test_the_autoscaler_scales_up_to_the_queue_and_back_to_min_when_it_drains(
    queued: tuple[str, str], tmp_path: Path
) -> None:
    url, queue = queued
    settings = (
        "min: 1, max: 3, processing: 1, stddev: 0, deadline: 10, pollinterval: 0.05, history: 0.2"
    )
    coordinator, scaler, seen = await scaled_network(
        url, tmp_path, "Sleepy", scaling_for("s", queue, settings)
    )
    try:
        scaler.start()
        await seen.wait(lambda: coordinator.supervisor.count("s") == 3, "three copies")
        first = seen.of(EventKind.AUTOSCALE)[0]
        assert first.message == "s: scale to 3 (queued 30, workers 1, estimate 3, recent max None)"
        await asyncio.sleep(0.3)
        assert len(seen.of(EventKind.AUTOSCALE)) == 2, "an unchanged decision is told once"
        drain = get_client(url)
        await drain.connect()

        async def take(message: Message) -> None:
            await drain.ack_message(message)

        await drain.subscribe_to_queue(queue, take)
        await seen.wait(lambda: coordinator.supervisor.count("s") == 1, "back to min")
        await drain.disconnect()
        assert targets(seen) == [3, 1]
        down = seen.of(EventKind.AUTOSCALE)[-1].message
        assert down == "s: scale to 1 (queued 0, workers 3, estimate 1, recent max 1)"
    finally:
        await scaler.stop()
        await coordinator.stop()


async def test_copies_that_keep_crashing_do_not_make_the_scaler_oscillate(
    queued: tuple[str, str], tmp_path: Path
) -> None:
    url, queue = queued
    settings = (
        "min: 1, max: 3, processing: 1, stddev: 0, deadline: 10, pollinterval: 0.05, history: 0.2"
    )
    coordinator, scaler, seen = await scaled_network(
        url, tmp_path, "Lonely", scaling_for("lonely", queue, settings)
    )
    try:
        scaler.start()
        await seen.wait(lambda: len(seen.of(EventKind.ERROR)) == 2, "two copies given up")
        await asyncio.sleep(0.5)
        assert targets(seen) == [3]
        assert coordinator.supervisor.count("lonely") == 3
        started = [e.message.split(":")[0] for e in seen.of(EventKind.PROCESS_STARTED)]
        assert sorted(started) == ["lonely", *["lonely[2]"] * 2, *["lonely[3]"] * 2]
    finally:
        await scaler.stop()
        await coordinator.stop()


def project(tmp_path: Path, scaling: str) -> Path:
    (tmp_path / "fbp-config.json").write_text('{"components": {"Sleepy": "sleep 60"}}')
    (tmp_path / "graph.fbp").write_text(
        "INPORT=w.IN:IN\nw(Sleepy)\nx(Sleepy)\nw OUT -> IN y(Sleepy)\n"
    )
    (tmp_path / "scale.guv.yaml").write_text(scaling)
    return tmp_path


@pytest.mark.parametrize(
    ("scaling", "args", "message"),
    [
        (
            "nope: {max: 2}",
            [],
            "scale.guv.yaml: nope: no role 'nope' in the graph (roles: w, x, y)",
        ),
        ("w: {min: 3, max: 2}", [], "scale.guv.yaml: w: min 3 > max 2"),
        ("x: {max: 2}", [], "x: role 'x' has no inqueue fed by the graph; name it with 'queue'"),
        ("w: {max: 2}", ["--ignore", "w"], "w: role 'w' is ignored (--ignore); msgflo can only"),
        ("w: [", [], "scale.guv.yaml:1:5: not valid YAML"),
    ],
)
def test_bad_autoscale_files_end_msgflo_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scaling: str, args: list[str], message: str
) -> None:
    monkeypatch.chdir(project(tmp_path, scaling))
    argv = ["--graph", "graph.fbp", "--autoscale", "scale.guv.yaml", "--broker", "memory://x"]
    result = CliRunner().invoke(main, [*argv, *args])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("msgflo: ") and message in line


def test_autoscale_needs_a_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project(tmp_path, "w: {max: 2}"))
    result = CliRunner().invoke(main, ["--autoscale", "scale.guv.yaml"])
    assert result.exit_code == 2 and "--autoscale needs --graph" in result.output
