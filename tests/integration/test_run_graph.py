"""``msgflo --graph`` end to end, as a user runs it: embedded broker, Mosquitto, RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

import msgflo
from msgflo.transport import get_client
from tests.brokers import MOSQUITTO, NATS, NATS_JETSTREAM, RABBITMQ, require_broker
from tests.integration.run_helpers import UPPER, Msgflo, Sink, run_msgflo

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BROKERS = [
    pytest.param(None, id="embedded"),
    pytest.param(MOSQUITTO, id="mosquitto"),
    pytest.param(RABBITMQ, id="rabbitmq"),
    pytest.param(NATS, id="nats"),
    pytest.param(NATS_JETSTREAM, id="nats-jetstream"),
]


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest) -> str | None:
    url: str | None = request.param
    if url == MOSQUITTO:
        require_broker(1883, "Mosquitto")
    elif url == RABBITMQ:
        require_broker(5672, "RabbitMQ")
    elif url in (NATS, NATS_JETSTREAM):
        require_broker(4222, "NATS")
    return url


def project(tmp_path: Path, graph: str) -> Path:
    (tmp_path / "participants").mkdir()
    (tmp_path / "participants" / "Upper.py").write_text(UPPER)
    config = {"components": {"Missing": "no-such-command-4711 #ROLE"}}
    (tmp_path / "fbp-config.json").write_text(json.dumps(config))
    (tmp_path / "graph.fbp").write_text(graph)
    return tmp_path


async def broker_url(running: Msgflo, broker: str | None) -> str:
    if broker is not None:
        return broker
    match = await running.wait_line(r"embedded MQTT broker on (\S+)")
    return str(match[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_network_runs_survives_bad_nodes_restarts_and_stops_cleanly(
    tmp_path: Path, prefix: str, broker: str | None
) -> None:
    a, b = f"{prefix}a", f"{prefix}b"
    graph = (
        f"'hello' -> IN {a}(Upper)\n"
        f"{a} OUT -> IN {b}(Upper)\n"
        f"{prefix}broken(Missing) OUT -> IN {b}\n"
        f"{prefix}stranger(Nowhere/Thing) OUT -> IN {b}\n"
    )
    async with run_msgflo(
        project(tmp_path, graph), "--graph", "graph.fbp", "--max-restarts", "1", broker=broker
    ) as running:
        url = await broker_url(running, broker)
        sink = await Sink.on(url, f"{b}.OUT")
        try:
            await running.wait_line(r"^msgflo ready: graph\.fbp with 4 nodes")
            assert await sink.get() == "HELLO"
            await running.wait_line(rf"warning: {prefix}stranger: component 'Nowhere/Thing'")
            await running.wait_line(
                rf"error: {prefix}broken: giving up on `no-such-command-4711 {prefix}broken`"
            )

            [first_pid] = running.pids()[a]
            os.kill(first_pid, signal.SIGKILL)
            await running.wait_line(rf"{a}: `.*` killed by SIGKILL; restarting")
            await running.wait_line(rf"{a}: started pid (?!{first_pid}\b)\d+")
            assert await sink.get() == "HELLO", "the restarted instance gets its IIP again"
        finally:
            await sink.close()
        pids = [pid for pids in running.pids().values() for pid in pids]
        assert await running.stop() == 0
    assert len(pids) == 3
    assert [pid for pid in pids if alive(pid)] == []


async def test_late_foreign_participant_is_wired_when_it_appears_and_gets_its_iip(
    tmp_path: Path, prefix: str, broker: str | None
) -> None:
    late, b = f"{prefix}late", f"{prefix}b"
    graph = f"'config' -> IN {late}(Elsewhere)\n{late} OUT -> IN {b}(Upper)\n"
    async with run_msgflo(
        project(tmp_path, graph), "--graph", "graph.fbp", broker=broker
    ) as running:
        url = await broker_url(running, broker)
        await running.wait_line(rf"^msgflo ready: .* waiting for {late}, {b}")
        await running.wait_line(rf"{b}: participant .* discovered")
        sink = await Sink.on(url, f"{b}.OUT")
        client = get_client(url)
        await client.connect()

        class Late(msgflo.Participant):
            component = "Elsewhere"
            inports = {"in": "string"}
            outports = {"out": "string"}

            async def process(self, port: str, msg: msgflo.Message) -> None:
                await self.send("out", f"late got {msg.data}")

        participant = Late(late)
        try:
            await participant.start(client)
            await running.wait_line(rf"wired edge {late}\.out -> {b}\.in")
            assert await sink.get() == "LATE GOT CONFIG"
        finally:
            await participant.stop()
            await client.disconnect()
            await sink.close()
        assert await running.stop() == 0


async def test_unreadable_graph_is_a_clear_error_and_exit_code_1(tmp_path: Path) -> None:
    async with run_msgflo(
        project(tmp_path, "a(Upper) OUT -> "), "--graph", "graph.fbp", broker="memory://x"
    ) as running:
        code = await asyncio.wait_for(running.process.wait(), 30)
        await running.stop()
    assert code == 1
    assert running.lines[0].startswith("msgflo: graph.fbp:1:"), running.lines
    assert not any("Traceback" in line for line in running.lines)
