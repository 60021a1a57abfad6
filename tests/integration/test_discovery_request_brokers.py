"""A coordinator started after its participants wires them from their answers to its discovery
request, on RabbitMQ and Mosquitto, and never waits for a participant that cannot answer."""

from __future__ import annotations

import pytest

from tests.brokers import MOSQUITTO, RABBITMQ, require_broker
from tests.discovery_checks import wired_without_heartbeat

pytestmark = pytest.mark.broker


@pytest.mark.parametrize(
    ("url", "port"), [(RABBITMQ, 5672), (MOSQUITTO, 1883)], ids=["amqp", "mqtt"]
)
async def test_a_coordinator_started_last_wires_at_once(
    url: str, port: int, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_broker(port, url.split(":")[0])
    await wired_without_heartbeat(url, prefix, monkeypatch)
