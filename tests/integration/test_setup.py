"""msgflo-setup as a process: static and discover modes, RoundRobin, and MQTT without --forever."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from msgflo.transport import Message, QueueKind, get_broker, get_client
from tests.brokers import MOSQUITTO, RABBITMQ, require_broker
from tests.integration.processes import BIN, running

pytestmark = [pytest.mark.broker, pytest.mark.slow]
LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy"
WAIT = 15.0


async def setup(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo-setup"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_static_setup_binds_by_convention_on_rabbitmq(tmp_path: Path, prefix: str) -> None:
    require_broker(5672, "RabbitMQ")
    a, b, drop, worker = (f"{prefix}{n}" for n in ("api", "log", "drop", "worker"))
    graph = tmp_path / "g.fbp"
    graph.write_text(
        f"{a}(test/Api) OUT -> IN {b}(test/Log)\n"
        f"{a} JOB -> IN rr(msgflo/RoundRobin) OUT -> IN {worker}(test/Worker)\n"
        f"rr DEADLETTER -> IN {drop}(test/Drop)\n"
    )
    code, out, err = await setup(str(graph), "--broker", RABBITMQ)
    assert code == 0, err
    assert f"PUBSUB: \t {a}.OUT -> {b}.IN" in out
    assert f"ROUNDROBIN:\t {a}.JOB -> {worker}.IN" in out
    assert f"DEADLETTER:\t {worker}.IN -> {drop}.IN" in out

    client = get_broker(RABBITMQ)
    await client.connect()
    try:
        got: asyncio.Queue[Any] = asyncio.Queue()

        async def keep(message: Message) -> None:
            got.put_nowait((message.queue, message.data))
            await client.ack_message(message)

        await client.subscribe_to_queue(f"{b}.IN", keep)
        await client.subscribe_to_queue(f"{worker}.IN", keep)
        await client.send_to(QueueKind.OUT, f"{a}.OUT", "logged")
        await client.send_to(QueueKind.OUT, f"{a}.JOB", "job")
        arrived = {await asyncio.wait_for(got.get(), WAIT) for _ in range(2)}
        assert arrived == {(f"{b}.IN", "logged"), (f"{worker}.IN", "job")}
    finally:
        for queue in (f"{b}.IN", f"{worker}.IN", f"{drop}.IN"):
            await client.remove_queue(QueueKind.IN, queue)
        for exchange in (f"{a}.OUT", f"{a}.JOB", f"out-{a}.JOB", f"dead-{worker}.IN"):
            await client.remove_queue(QueueKind.OUT, exchange)
        await client.disconnect()


async def test_discovered_edges_on_mqtt_keep_working_after_setup_exits(
    tmp_path: Path, prefix: str
) -> None:
    """The original needed --forever on MQTT (msgflo#181); our participants subscribe
    themselves, so setup can exit."""
    require_broker(1883, "Mosquitto")
    a, b = f"{prefix}a", f"{prefix}b"
    graph = tmp_path / "g.fbp"
    graph.write_text(f"{a}(Repeat) OUT -> IN {b}(Upper)\n")
    observer = get_client(MOSQUITTO)
    await observer.connect()
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def keep(message: Message) -> None:
        got.put_nowait(message.data)

    await observer.subscribe_to_queue(f"{b}/out", keep)
    repeat = [str(BIN / "msgflo-python"), str(LEGACY / "Repeat.py"), a]
    upper = [sys.executable, str(LEGACY / "Upper.py"), b]
    # MQTT keeps no discovery: setup hears running participants at their next heartbeat.
    beat = {"MSGFLO_DISCOVERY_PERIOD": "2"}
    async with running(repeat, MOSQUITTO, env=beat), running(upper, MOSQUITTO, env=beat):
        code, out, err = await setup(
            str(graph), "--broker", MOSQUITTO, "--discover", "--timeout", "10"
        )
        assert code == 0, err
        assert f"{a}/out -> {b}/in" in out
        await observer.send_to(QueueKind.IN, f"{a}/in", "after setup")
        assert await asyncio.wait_for(got.get(), WAIT) == "AFTER SETUP"
    await observer.disconnect()


async def test_discover_reports_missing_participants_and_exits_1(
    tmp_path: Path, prefix: str
) -> None:
    require_broker(1883, "Mosquitto")
    graph = tmp_path / "g.fbp"
    graph.write_text(f"{prefix}x(X) OUT -> IN {prefix}y(Y)\n")
    code, out, err = await setup(str(graph), "--broker", MOSQUITTO, "--discover", "--timeout", "1")
    assert code == 1
    assert f"{prefix}x" in err + out and f"{prefix}y" in err + out


async def test_missing_graph_is_a_usage_error() -> None:
    code, _, err = await setup("--broker", MOSQUITTO)
    assert code == 2 and "Missing argument 'GRAPH'" in err


async def test_unreadable_graph_names_the_file(tmp_path: Path) -> None:
    graph = tmp_path / "bad.fbp"
    graph.write_text("a(A) OUT -> \n")
    code, _, err = await setup(str(graph), "--broker", MOSQUITTO)
    assert code != 0 and "bad.fbp:1" in err
