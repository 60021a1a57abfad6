"""Code written for msgflo-python 0.4 runs unchanged, as a process, on MQTT and AMQP."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from msgflo.transport import Broker, Message, QueueKind, get_broker
from tests.brokers import MOSQUITTO, RABBITMQ, require_broker
from tests.integration.processes import BIN, running

LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy"
WAIT = 15.0

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture(params=["mqtt", "amqp"], ids=["mosquitto", "rabbitmq"])
async def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "mqtt":
        require_broker(1883, "Mosquitto")
        return MOSQUITTO
    require_broker(5672, "RabbitMQ")
    return RABBITMQ


class Observer:
    """A test's own view of the broker: discovery, and what participants send."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.discovered: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.created: list[str] = []

    async def watch_discovery(self, role: str) -> None:
        async def keep(message: Message) -> None:
            data = message.data
            if isinstance(data, dict) and data.get("payload", {}).get("role") == role:
                self.discovered.put_nowait(data)

        await self.broker.subscribe_participant_change(keep)

    async def listen(self, queue: str) -> asyncio.Queue[Any]:
        got: asyncio.Queue[Any] = asyncio.Queue()

        async def keep(message: Message) -> None:
            got.put_nowait(message.data)
            await self.broker.ack_message(message)

        await self.broker.create_queue(QueueKind.IN, queue)
        self.created.append(queue)
        await self.broker.subscribe_to_queue(queue, keep)
        return got

    async def send(self, queue: str, data: Any) -> None:
        await self.broker.send_to(QueueKind.IN, queue, data)


@pytest.fixture
async def observer(broker_url: str) -> AsyncIterator[Observer]:
    broker = get_broker(broker_url, connect_timeout=10)
    await broker.connect()
    obs = Observer(broker)
    yield obs
    if broker_url.startswith("amqp"):
        for queue in obs.created:
            await broker.remove_queue(QueueKind.IN, queue)
    await broker.disconnect()


async def next_item(queue: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(queue.get(), WAIT)


async def test_upper_announces_processes_and_survives_garbage(
    broker_url: str, observer: Observer, prefix: str
) -> None:
    role = f"{prefix}up"
    await observer.watch_discovery(role)
    out = await observer.listen(f"{role}/out")
    errors = await observer.listen(f"{role}/error")
    argv = [str(BIN / "msgflo-python"), str(LEGACY / "Upper.py"), role]
    async with running(argv, broker_url) as (proc, ready):
        assert ready.startswith(f"{role}(bars/Upper) ready on ")
        envelope = await next_item(observer.discovered)
        payload = envelope["payload"]
        assert set(payload) == {"id", "role", "component", "label", "icon", "inports", "outports"}
        assert payload["inports"] == [
            {"id": "in", "type": "string", "queue": f"{role}/in", "deadletter": f"dead-{role}/in"}
        ]
        await observer.send(f"{role}/in", "hello")
        assert await next_item(out) == "HELLO"
        await observer.send(f"{role}/in", 5)  # not a string: process raises
        assert (await next_item(errors))["type"] == "AttributeError"
        await observer.broker.send_raw(QueueKind.IN, f"{role}/in", b"not json {")
        assert await next_item(out) == "NOT JSON {"
        await observer.send(f"{role}/in", "explode")
        assert (await next_item(errors))["error"] == "asked to explode"
        await observer.send(f"{role}/in", "still here")
        assert await next_item(out) == "STILL HERE"
        assert proc.returncode is None


async def test_file_that_calls_msgflo_main_runs_with_python(
    broker_url: str, observer: Observer, prefix: str
) -> None:
    role = f"{prefix}rep"
    out = await observer.listen(f"{role}/out")
    async with running([sys.executable, str(LEGACY / "Repeat.py"), role], broker_url) as (_, ready):
        assert ready.startswith(f"{role}(PythonRepeat) ready on ")
        await observer.send(f"{role}/in", {"bar": "foo"})
        assert await next_item(out) == {"bar": "foo"}


async def test_several_inports_and_state(broker_url: str, observer: Observer, prefix: str) -> None:
    role = f"{prefix}acc"
    total = await observer.listen(f"{role}/total")
    argv = [str(BIN / "msgflo-python"), str(LEGACY / "Accumulate.py"), role]
    async with running(argv, broker_url):
        for n in (1, 2, 3):
            await observer.send(f"{role}/add", n)
        assert [await next_item(total) for _ in range(3)] == [1, 3, 6]
        await observer.send(f"{role}/reset", 100)
        assert await next_item(total) == 100  # two queues: no order between them, so wait
        await observer.send(f"{role}/add", 1)
        assert await next_item(total) == 101


async def test_command_line_iips(broker_url: str, observer: Observer, prefix: str) -> None:
    role = f"{prefix}cfg"
    out = await observer.listen(f"{role}/out")
    argv = [
        str(BIN / "msgflo-python"),
        str(LEGACY / "Config.py"),
        role,
        "--iips",
        '{"prefix": "> "}',
    ]
    async with running(argv, broker_url):
        await observer.send(f"{role}/in", "hi")
        assert await next_item(out) == "> hi"


async def test_participant_without_inports_announces_and_sends(
    broker_url: str, observer: Observer, prefix: str
) -> None:
    role = f"{prefix}tick"
    await observer.watch_discovery(role)
    out = await observer.listen(f"{role}/out")
    async with running([str(BIN / "msgflo-python"), str(LEGACY / "Ticker.py"), role], broker_url):
        payload = (await next_item(observer.discovered))["payload"]
        assert payload["inports"] == []
        first = await next_item(out)
        assert await next_item(out) == first + 1


async def test_blocking_process_does_not_stop_heartbeats(
    broker_url: str, observer: Observer, prefix: str
) -> None:
    role = f"{prefix}slow"
    await observer.watch_discovery(role)
    out = await observer.listen(f"{role}/out")
    argv = [str(BIN / "msgflo-python"), str(LEGACY / "Slow.py"), role]
    async with running(argv, broker_url, env={"MSGFLO_DISCOVERY_PERIOD": "0.44"}):
        await next_item(observer.discovered)
        for i in range(8):  # 1.6 s of time.sleep() in process()
            await observer.send(f"{role}/in", i)
        start = time.monotonic()
        beats = 0
        while time.monotonic() - start < 1.2:
            await next_item(observer.discovered)
            beats += 1
        assert beats >= 4, "heartbeats (every 0.2 s) went on while process() blocked"
        assert [await next_item(out) for _ in range(8)] == [{"slept": i} for i in range(8)]


async def test_nack_dead_letters_on_amqp(prefix: str) -> None:
    require_broker(5672, "RabbitMQ")
    broker = get_broker(RABBITMQ, connect_timeout=10)
    await broker.connect()
    obs = Observer(broker)
    role = f"{prefix}nk"
    try:
        dead = await obs.listen(f"dead-{role}/in")
        out = await obs.listen(f"{role}/out")
        async with running([str(BIN / "msgflo-python"), str(LEGACY / "Nack.py"), role], RABBITMQ):
            for n in (1, 2, 3):
                await obs.send(f"{role}/in", n)
            assert await next_item(out) == 2
            assert sorted([await next_item(dead), await next_item(dead)]) == [1, 3]
    finally:
        for queue in [*obs.created, f"{role}/in"]:
            await broker.remove_queue(QueueKind.IN, queue)
        await broker.disconnect()


async def test_unreachable_broker_is_one_line_and_exit_1() -> None:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo-python"),
        str(LEGACY / "Repeat.py"),
        "r",
        "--broker",
        "amqp://guest:secret@127.0.0.1:1",
        "--connect-timeout",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "127.0.0.1:1" in lines[0] and "secret" not in lines[0]
    assert out == b""
