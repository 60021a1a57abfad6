"""The hold-out checks of "trust it in the first hour", on RabbitMQ and Mosquitto: forged
discovery (the edge comes back), a second coordinator on the broker (both wire), an unroutable
send (RabbitMQ: exit 1), a dump that leaves nothing behind, deep graph files (one line each).

Each reuses the helpers of the tests that cover the behaviour in depth (discovery_checks,
test_send_dump, test_graph_cli) and runs it end to end on the real broker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from msgflo.coordinator import Coordinator, CoordinatorOptions, Event, EventKind
from msgflo.transport import QueueKind, encode, get_broker
from tests.brokers import MOSQUITTO, require_broker
from tests.discovery_checks import Upper, chain, clients, connect
from tests.integration.amqp_helpers import Rabbit, url
from tests.integration.processes import BIN
from tests.integration.run_helpers import Sink
from tests.integration.test_send_dump import run
from tests.unit.test_graph_cli import nested

pytestmark = pytest.mark.broker
WAIT = 15.0


@pytest.fixture(params=["amqp", "mqtt"], ids=["rabbitmq", "mosquitto"])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "mqtt":
        require_broker(1883, "Mosquitto")
        return MOSQUITTO
    require_broker(5672, "RabbitMQ")
    return url(request.getfixturevalue("vhost"))


def envelope(payload: dict[str, Any]) -> bytes:
    return encode({"protocol": "discovery", "command": "participant", "payload": payload})


def forged(id_: str, role: str, queue: Any) -> bytes:
    return envelope(
        {
            "id": id_,
            "role": role,
            "component": "test/Upper",
            "inports": [{"id": "in", "queue": f"{role}.IN"}],
            "outports": [{"id": "out", "queue": queue}],
        }
    )


class Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event: Event) -> None:
        if event.kind in (EventKind.WARNING, EventKind.ERROR):
            self.lines.append(event.message)


def source_of(coordinator: Coordinator, key: str) -> str:
    binding = coordinator.wiring[key].binding
    return binding.src if binding is not None else ""


async def until(condition: Any) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110  (wiring follows discovery: no event to await)
            await asyncio.sleep(0.05)


async def test_forged_discovery_moves_no_edge_for_good(broker_url: str, prefix: str) -> None:
    a, b = f"{prefix}a", f"{prefix}b"
    key = f"edge {a}.out -> {b}.in"
    async with clients(broker_url) as opened:
        real_a = Upper(a)
        await real_a.start(await connect(broker_url, opened))
        await Upper(b).start(await connect(broker_url, opened))
        coordinator = Coordinator(
            get_broker(broker_url), options=CoordinatorOptions(broker_url=broker_url)
        )
        said = Said()
        coordinator.add_listener(said)
        await coordinator.start()
        sink = await Sink.on(broker_url, f"{b}.OUT")
        try:
            await coordinator.load_graph(chain(prefix, "a", "b"))
            assert await coordinator.settled(WAIT)
            forger = await connect(broker_url, opened)
            # A newcomer with other queues, and malformed messages: the edge stays, one line each.
            await forger.send_discovery(forged(f"{a}-forged", a, f"{prefix}elsewhere"))
            await forger.send_discovery(forged(f"{a}-obj", a, {"queue": "x"}))
            await forger.send_discovery(forged(f"{a}-nl", f"{a}\nmsgflo: fine", "x"))
            await until(lambda: len(said.lines) >= 3)
            assert any("wiring follows" in line and f"{a}-forged" in line for line in said.lines)
            assert all("\n" not in line for line in said.lines)
            assert f"{a}-obj" not in coordinator.registry.instances
            assert source_of(coordinator, key) == f"{a}.OUT"
            # A forged update of the live instance itself moves the edge until it announces.
            await forger.send_discovery(forged(real_a.id, a, f"{prefix}elsewhere"))
            await until(lambda: source_of(coordinator, key) == f"{prefix}elsewhere")
            await real_a.announce()
            await until(lambda: source_of(coordinator, key) == f"{a}.OUT")
            await forger.send_to(QueueKind.IN, f"{a}.IN", "back")
            assert await sink.get(WAIT) == "BACK"
        finally:
            await sink.close()
            await coordinator.stop()


async def test_a_second_coordinator_on_the_broker_both_wire(broker_url: str, prefix: str) -> None:
    first, second = f"{prefix}x", f"{prefix}y"
    coordinators = [
        Coordinator(get_broker(broker_url), options=CoordinatorOptions(broker_url=broker_url))
        for _ in range(2)
    ]
    async with clients(broker_url) as opened:
        for coordinator, graph_prefix in zip(coordinators, (first, second), strict=True):
            await coordinator.start()
            await coordinator.load_graph(chain(graph_prefix, "a", "b"))
        sinks = [await Sink.on(broker_url, f"{p}b.OUT") for p in (first, second)]
        try:
            for graph_prefix in (first, second):  # they announce after both coordinators listen
                for role in ("a", "b"):
                    await Upper(f"{graph_prefix}{role}").start(await connect(broker_url, opened))
            for coordinator in coordinators:
                assert await coordinator.settled(WAIT), coordinator.wiring
            sender = await connect(broker_url, opened)
            for graph_prefix, sink in zip((first, second), sinks, strict=True):
                await sender.send_to(QueueKind.IN, f"{graph_prefix}a.IN", graph_prefix)
                assert await sink.get(WAIT) == graph_prefix.upper()
        finally:
            for sink in sinks:
                await sink.close()
            for coordinator in coordinators:
                await coordinator.stop()


async def test_an_unroutable_send_is_an_error_where_the_broker_can_tell(
    broker_url: str, prefix: str
) -> None:
    send = str(BIN / "msgflo-send-message")
    code, _, err = await run(send, "--broker", broker_url, "-q", f"{prefix}.nowhere", "--json", "1")
    if broker_url.startswith("amqp"):
        assert code == 1
        [line] = err.strip().splitlines()
        assert line.startswith(f"msgflo-send-message: queue '{prefix}.nowhere' does not exist")
    else:  # MQTT has no way to know who subscribes: sent, as the original does
        assert code == 0, err


async def test_a_dump_leaves_nothing_behind(broker_url: str, prefix: str) -> None:
    outqueue = f"{prefix}.OUT"
    dump = str(BIN / "msgflo-dump-message")
    async with clients(broker_url) as opened:
        producer = await connect(broker_url, opened)
        await producer.create_queue(QueueKind.OUT, outqueue)
        task = asyncio.create_task(
            run(dump, "--broker", broker_url, "-q", outqueue, "--timeout", "20")
        )
        while not task.done():  # the dumper subscribes at its own pace
            await producer.send_to(QueueKind.OUT, outqueue, "first")
            await asyncio.wait([task], timeout=0.1)
        code, out, err = await task
        assert (code, out.strip()) == (0, '"first"'), err
        for _ in range(5):  # sent while nobody dumps: kept nowhere
            await producer.send_to(QueueKind.OUT, outqueue, "stale")
        code, out, _ = await run(dump, "--broker", broker_url, "-q", outqueue, "--timeout", "2")
        assert (code, out) == (1, "")
        if broker_url.startswith("amqp"):
            vhost = broker_url.rsplit("/", 1)[1]
            assert Rabbit(vhost).bindings_from(outqueue) == set()


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("deep.json", nested(100_000), "nested more than 128 levels deep"),
        ("int.json", '{"properties": {"n": ' + "9" * 5001 + "}}", "more than 4300 digits"),
        ("iip.fbp", nested(600) + " -> IN a(A)\n", "IIP nested more than 128 levels deep"),
    ],
)
async def test_deep_graph_files_are_one_line(
    broker_url: str, tmp_path: Path, name: str, text: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    code, _, err = await run(
        str(BIN / "msgflo"), "--graph", str(path), "--broker", broker_url, "--port", "0"
    )
    assert code != 0
    [line] = err.strip().splitlines()
    assert str(path) in line and problem in line
