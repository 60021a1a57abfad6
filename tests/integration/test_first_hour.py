"""What a new user meets in the first hour, through the real commands: ``msgflo`` listening
beyond loopback, a busy port, no ``--graph``, a closed broker port, the queue line per node,
``GET /api`` of a running network, and ``msgflo-send-message --lines`` on both brokers."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from msgflo.transport import Message, QueueKind, get_client
from tests.brokers import MOSQUITTO, RABBITMQ, require_broker
from tests.integration.processes import BIN
from tests.integration.run_helpers import UPPER, run_msgflo

WAIT = 30.0
URL = re.compile(r"msgflo ready: .* FBP runtime on ws://[^:]+:(\d+)")


@pytest.fixture(params=["mqtt", "amqp"], ids=["mosquitto", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "mqtt":
        require_broker(1883, "Mosquitto")
        return MOSQUITTO
    require_broker(5672, "RabbitMQ")
    return RABBITMQ


async def get_json(port: int, path: str, **headers: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response,
    ):
        return response.status, await response.json()


async def getruntime(port: int, secret: str | None) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{port}/") as ws,
    ):
        message: dict[str, Any] = {"protocol": "runtime", "command": "getruntime", "payload": {}}
        if secret is not None:
            message["secret"] = secret
        await ws.send_str(json.dumps(message))
        reply: dict[str, Any] = await asyncio.wait_for(ws.receive_json(), WAIT)
        return reply


async def test_beyond_loopback_without_a_secret_one_is_generated(
    tmp_path: Path, prefix: str
) -> None:
    args = ("--host", "0.0.0.0", "--port", "0")
    async with run_msgflo(tmp_path, *args, broker=f"memory://{prefix}") as running:
        port = int((await running.wait_line(URL.pattern))[1])
        secret = (await running.wait_line(r"generated secret (\S+) "))[1]
        await running.wait_line(rf"open https://app\.flowhub\.io/.*secret%3D{re.escape(secret)}")
        anonymous = await getruntime(port, None)
        assert anonymous["payload"]["capabilities"] == []
        trusted = await getruntime(port, secret)
        assert "component:setsource" in trusted["payload"]["capabilities"]
        assert (await get_json(port, "/api"))[0] == 401
        assert (await get_json(port, "/api?secret=wrong"))[0] == 403
        status, body = await get_json(port, "/api", **{"X-Msgflo-Secret": secret})
        assert status == 200 and body["nodes"] == []
        await running.stop()
    assert sum(secret in line for line in running.lines) == 2  # the line, and the URL's


async def test_default_access_full_beyond_loopback_warns(tmp_path: Path, prefix: str) -> None:
    args = ("--host", "0.0.0.0", "--port", "0", "--default-access", "full")
    async with run_msgflo(tmp_path, *args, broker=f"memory://{prefix}") as running:
        port = int((await running.wait_line(URL.pattern))[1])
        await running.wait_line(r"warning: the FBP runtime on 0\.0\.0\.0:\d+ gives anyone")
        assert "component:setsource" in (await getruntime(port, None))["payload"]["capabilities"]
        await running.stop()
    assert not any("generated secret" in line for line in running.lines)


async def test_a_busy_port_suggests_port_0(tmp_path: Path, prefix: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ("--host", "127.0.0.1", "--port", str(port))
        async with run_msgflo(tmp_path, *args, broker=f"memory://{prefix}") as running:
            assert await asyncio.wait_for(running.process.wait(), WAIT) == 1
            await running.stop()
    [line] = [line for line in running.lines if "cannot listen" in line]
    assert line.endswith("choose another --port, or --port 0 for any free one")


async def test_without_a_graph_msgflo_says_what_it_does(tmp_path: Path, prefix: str) -> None:
    async with run_msgflo(tmp_path, "--port", "0", broker=f"memory://{prefix}") as running:
        await running.wait_line(r"msgflo ready: \(empty graph\) with 0 nodes")
        await running.wait_line(r"no --graph given: running an empty network; build it from")
        await running.stop()


async def test_a_closed_amqp_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    broker = f"amqp://guest:guest@127.0.0.1:{port}"
    async with run_msgflo(tmp_path, "--port", "0", broker=broker) as running:
        assert await asyncio.wait_for(running.process.wait(), WAIT) == 1
        await running.stop()
    assert running.lines == [
        f"msgflo: cannot connect to amqp://guest:***@127.0.0.1:{port}: connection refused"
    ]


@pytest.mark.broker
async def test_each_node_gets_a_queue_line_and_api_lists_the_queues(
    tmp_path: Path, prefix: str, broker_url: str
) -> None:
    require_broker(5672 if broker_url.startswith("amqp") else 1883, "broker")
    (tmp_path / "participants").mkdir()
    (tmp_path / "participants" / "Upper.py").write_text(UPPER)
    (tmp_path / "g.fbp").write_text(f"{prefix}a(Upper) OUT -> IN {prefix}b(Upper)\n")
    args = ("--graph", "g.fbp", "--port", "0")
    async with run_msgflo(tmp_path, *args, broker=broker_url) as running:
        port = int((await running.wait_line(URL.pattern))[1])
        for role in (f"{prefix}a", f"{prefix}b"):
            await running.wait_line(
                rf"msgflo: {role}: queues in: in={role}\.IN; out: out={role}\.OUT$", WAIT
            )
        await running.wait_line(
            rf"wired edge {prefix}a\.out -> {prefix}b\.in: {prefix}a\.OUT -> {prefix}b\.IN \(", WAIT
        )
        status, body = await get_json(port, "/api")
        await running.stop()
    assert status == 200 and body["graph"] == "default/main"
    nodes = {node["name"]: node for node in body["nodes"]}
    assert nodes[f"{prefix}b"] == {
        "name": f"{prefix}b",
        "component": "Upper",
        "instances": 1,
        "inports": {"in": f"{prefix}b.IN"},
        "outports": {"out": f"{prefix}b.OUT"},
    }
    assert not any("\t" in line for line in running.lines)
    assert any(f"with 2 nodes on {body['broker']}" in line for line in running.lines)


@pytest.mark.broker
async def test_send_message_lines_sends_each_line_in_order(broker_url: str, prefix: str) -> None:
    queue = f"{prefix}.IN"
    lines = [{"name": "alice", "age": 30}, "bob", 42]
    client = get_client(broker_url)
    await client.connect()
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def keep(message: Message) -> None:
        got.put_nowait(message)
        await client.ack_message(message)

    await client.create_queue(QueueKind.IN, queue)
    await client.subscribe_to_queue(queue, keep)
    try:
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "msgflo-send-message"),
            *("--broker", broker_url, "--queue", queue, "--lines", "-"),
            stdin=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        text = "\n".join(json.dumps(line) for line in lines) + "\n\n"
        _, err = await asyncio.wait_for(proc.communicate(text.encode()), WAIT)
        assert proc.returncode == 0, err
        received = [(await asyncio.wait_for(got.get(), WAIT)).data for _ in lines]
        assert received == lines
    finally:
        if broker_url.startswith("amqp"):
            await client.remove_queue(QueueKind.IN, queue)
        await client.disconnect()
