"""msgflo-monitor on RabbitMQ and Mosquitto: periodic traffic keeps it running and feeds the
systemd watchdog; traffic that stops makes it run --exec and exit 1; a missing queue (where
the broker can tell) is one line and exit 1; network mode reads a runtime's /api."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from msgflo.transport import QueueKind, get_client
from tests.brokers import MOSQUITTO, RABBITMQ, require_broker
from tests.integration.processes import BIN, Output
from tests.integration.run_helpers import run_msgflo

pytestmark = pytest.mark.broker


@pytest.fixture(params=["mqtt", "amqp"], ids=["mosquitto", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "mqtt":
        require_broker(1883, "Mosquitto")
        return MOSQUITTO
    require_broker(5672, "RabbitMQ")
    return RABBITMQ


@contextlib.asynccontextmanager
async def publishing(broker: str, queue: str, every: float) -> AsyncIterator[asyncio.Event]:
    """Send to ``queue`` every ``every`` seconds until the yielded event is set."""
    client = get_client(broker)
    await client.connect()
    await client.create_queue(QueueKind.OUT, queue)
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            await client.send_to(QueueKind.OUT, queue, {"t": 1})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    task = asyncio.create_task(loop())
    try:
        yield stop
    finally:
        stop.set()
        await task
        await client.disconnect()


async def test_traffic_keeps_it_alive_and_silence_fails_it(broker_url: str, tmp_path: Path) -> None:
    queue = f"mon{uuid.uuid4().hex[:8]}.OUT"
    notify = tmp_path / "notify"
    marker = tmp_path / "exec-ran"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(notify))
        server.setblocking(False)
        async with publishing(broker_url, queue, 0.1) as stop:
            process = await asyncio.create_subprocess_exec(
                str(BIN / "msgflo-monitor"),
                *("--broker", broker_url, "--queue", queue, "--expect-periodic", "500ms"),
                *("--fail-missed", "3", "--exec", f"echo $MSGFLO_MONITOR_QUEUES > {marker}"),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "1000000"},
            )
            output = Output(process)
            loop = asyncio.get_running_loop()
            first = await asyncio.wait_for(loop.sock_recv(server, 4096), 20)
            assert first.startswith(b"READY=1\n")
            await asyncio.sleep(3)  # six periods of healthy traffic
            assert process.returncode is None
            assert not any("missed" in line or "FAILED" in line for line in output.lines)
            datagrams = []
            with contextlib.suppress(BlockingIOError):
                while True:
                    datagrams.append(server.recv(4096))
            assert sum(d.startswith(b"WATCHDOG=1\n") for d in datagrams) >= 4
            await output.wait_line(rf"{queue}: ok, \d+ messages")
            stop.set()
            code = await asyncio.wait_for(process.wait(), 10)
    await asyncio.gather(*output._readers)
    assert code == 1
    assert marker.read_text().strip() == queue
    assert any(f"{queue}: FAILED" in line for line in output.lines)


async def test_missing_queue_on_rabbitmq_is_one_line() -> None:
    require_broker(5672, "RabbitMQ")
    queue = f"mon{uuid.uuid4().hex[:8]}.NOPE"
    process = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo-monitor"),
        *("--broker", RABBITMQ, "--queue", queue, "--expect-periodic", "1s"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1 and out == b""
    assert err.decode().splitlines() == [
        f"msgflo-monitor: queue or exchange '{queue}' does not exist on amqp://guest:***@127.0.0.1:5672/"
    ]


async def test_network_mode_once_reads_the_runtime(tmp_path: Path, prefix: str) -> None:
    (tmp_path / "main.fbp").write_text("a(test/A) OUT -> IN b(test/B)\n")
    args = ("--graph", "main.fbp", "--port", "0", "--secret", "s3")
    async with run_msgflo(tmp_path, *args, broker=f"memory://{prefix}") as running:
        port = (await running.wait_line(r"FBP runtime on ws://[^:]+:(\d+)"))[1]
        monitor = [str(BIN / "msgflo-monitor"), "--runtime", f"ws://127.0.0.1:{port}", "--once"]
        denied = await asyncio.create_subprocess_exec(
            *monitor, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, err = await denied.communicate()
        assert denied.returncode == 1 and "HTTP 401" in err.decode()
        allowed = await asyncio.create_subprocess_exec(
            *monitor, "--secret", "s3", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await allowed.communicate()
        assert allowed.returncode == 0
        snapshot = json.loads(out)
        assert sorted(n["name"] for n in snapshot["nodes"]) == ["a", "b"]
        await running.stop()
