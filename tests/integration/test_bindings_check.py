"""``msgflo-setup --check`` on RabbitMQ (management API) and Mosquitto (the binders' retained
records): a graph set up matches; a changed graph shows missing and extra bindings; on MQTT a
binder that dies takes its record with it."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import pytest

from tests.brokers import MOSQUITTO, RABBITMQ, require_broker
from tests.integration.processes import BIN, Output

pytestmark = pytest.mark.broker


async def setup(*args: str) -> tuple[int, list[str]]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo-setup"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, (out + err).decode().splitlines()


def graphs(tmp_path: Path) -> tuple[str, str, str]:
    p = f"c{uuid.uuid4().hex[:8]}"
    first = tmp_path / "first.fbp"
    first.write_text(f"{p}a(A) OUT -> IN {p}b(B)\n{p}b OUT -> IN {p}c(C)\n")
    second = tmp_path / "second.fbp"
    second.write_text(f"{p}a(A) OUT -> IN {p}b(B)\n{p}b OUT -> IN {p}d(C)\n")
    return p, str(first), str(second)


async def test_check_on_rabbitmq(tmp_path: Path) -> None:
    require_broker(5672, "RabbitMQ")
    require_broker(15672, "RabbitMQ management plugin")
    p, first, second = graphs(tmp_path)
    assert (await setup(first, "--broker", RABBITMQ))[0] == 0
    assert await setup("--check", first, "--broker", RABBITMQ) == (0, ["bindings match the graph"])
    code, lines = await setup("--check", second, "--broker", RABBITMQ)
    assert code == 1
    assert lines == [
        f"missing: {p}b.OUT -> {p}d.IN (pubsub): in the graph, not on the broker",
        f"extra: {p}b.OUT -> {p}c.IN (pubsub): on the broker, binds a queue of the graph to "
        "one outside it",
    ]


async def test_management_api_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    require_broker(5672, "RabbitMQ")
    _, first, _ = graphs(tmp_path)
    broker = f"{RABBITMQ}?management=http://127.0.0.1:9"
    code, lines = await setup("--check", first, "--broker", broker)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith("msgflo-setup: RabbitMQ management API at http://127.0.0.1:9 ")


async def test_check_on_mosquitto_sees_another_binder(tmp_path: Path) -> None:
    require_broker(1883, "Mosquitto")
    p, first, second = graphs(tmp_path)
    binder = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo-setup"),
        *(first, "--broker", MOSQUITTO, "--forever"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    output = Output(binder)
    try:
        await output.wait_line("keeping alive")
        assert await setup("--check", first, "--broker", MOSQUITTO) == (
            0,
            ["bindings match the graph"],
        )
        code, lines = await setup("--check", second, "--broker", MOSQUITTO)
        assert code == 1 and [line.split(":")[0] for line in lines] == ["missing", "extra"]
    finally:
        binder.send_signal(signal.SIGKILL)  # no goodbye: the last will clears the record
        await binder.wait()
    code, lines = await setup("--check", first, "--broker", MOSQUITTO)
    assert code == 1
    assert lines == [
        f"missing: {p}a.OUT -> {p}b.IN (pubsub): in the graph, not on the broker",
        f"missing: {p}b.OUT -> {p}c.IN (pubsub): in the graph, not on the broker",
    ]
