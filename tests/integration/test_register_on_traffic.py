"""msgflo-register with ``on_traffic`` on Mosquitto and RabbitMQ: a foreign participant is
announced only while its outqueue carries messages, so a device that stops drops out."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from msgflo.transport import Message, QueueKind, get_broker, get_client
from tests.brokers import MOSQUITTO, RABBITMQ, require_broker
from tests.integration.processes import BIN, running

pytestmark = pytest.mark.broker


@pytest.fixture(params=["mqtt", "amqp"], ids=["mosquitto", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "mqtt":
        require_broker(1883, "Mosquitto")
        return MOSQUITTO
    require_broker(5672, "RabbitMQ")
    return RABBITMQ


async def test_announced_only_while_traffic_is_seen(broker_url: str, tmp_path: Path) -> None:
    role = f"dev{uuid.uuid4().hex[:8]}"
    queue = f"{role}.STATUS"
    declaration = tmp_path / "device.yml"
    declaration.write_text(
        f"component: my/Device\non_traffic: 1s\noutports:\n  status:\n    queue: {queue}\n"
    )
    observer = get_broker(broker_url)
    device = get_client(broker_url)
    await observer.connect()
    await device.connect()
    announced: list[float] = []
    payloads: list[dict[str, Any]] = []

    async def keep(message: Message) -> None:
        data = message.data
        if isinstance(data, dict) and data.get("payload", {}).get("role") == role:
            announced.append(time.monotonic())
            payloads.append(data["payload"])

    try:
        await observer.subscribe_participant_change(keep)
        await device.create_queue(QueueKind.OUT, queue)
        argv = [str(BIN / "msgflo-register"), "--role", f"{role}:{declaration}", "--interval", "1"]
        env = {**os.environ, "MSGFLO_BROKER": broker_url}
        async with running(argv, broker_url, env=env) as (_, line):
            assert line == f"announcing {role} while its traffic is seen (1 s)"
            await asyncio.sleep(1.5)
            assert announced == []  # silent device: never announced
            for _ in range(10):  # 2 s of traffic
                await device.send_to(QueueKind.OUT, queue, {"on": True})
                await asyncio.sleep(0.2)
            assert len(announced) >= 2
            stopped = time.monotonic()
            await asyncio.sleep(3)
            assert all(at < stopped + 1.5 for at in announced)  # dropped out after the window
    finally:
        await device.disconnect()
        await observer.disconnect()
    assert "on_traffic" not in payloads[0]
    assert payloads[0]["outports"][0]["queue"] == queue
