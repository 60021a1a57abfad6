"""The fast MQTT data path on a real broker: bursts, bodies larger than one socket read, QoS 1
through paho, and a legacy relay keeping order end to end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import msgflo
from msgflo.transport import QueueKind, get_client
from tests.brokers import MOSQUITTO, require_broker
from tests.integration.mqtt_helpers import WAIT, Inbox, topics

pytestmark = pytest.mark.broker


@pytest.fixture(autouse=True)
def _mosquitto() -> None:
    require_broker(1883, "mqtt")


@pytest.mark.parametrize("qos", [0, 1])
async def test_bursts_and_large_bodies_arrive_whole_and_in_order(qos: int) -> None:
    (topic,) = topics("burst")
    url = f"{MOSQUITTO}?qos={qos}"
    receiver, sender = get_client(url), get_client(url)
    inbox = Inbox()
    async with receiver, sender:
        await receiver.create_queue(QueueKind.IN, topic)
        await receiver.subscribe_to_queue(topic, inbox.handler)
        bodies = [
            (b"L%05d" % i) * 30_000 if i % 250 == 0 else b'{"seq": %d}' % i for i in range(2000)
        ]
        for body in bodies:
            await sender.send_raw(QueueKind.OUT, topic, body)
        await sender.flush()
        await inbox.wait_for(len(bodies))
        assert inbox.bodies == bodies


class Repeat(msgflo.Participant):
    def __init__(self, role: str) -> None:
        msgflo.Participant.__init__(self, {"component": "Repeat"}, role)

    def process(self, inport: str, msg: Any) -> None:  # type: ignore[override]
        self.send("out", msg.data)
        self.ack(msg)


async def test_legacy_relay_keeps_order_on_mosquitto(prefix: str) -> None:
    participant = Repeat(f"{prefix}rep")
    relay, feeder = get_client(MOSQUITTO), get_client(MOSQUITTO)
    inbox = Inbox()
    async with relay, feeder:
        await participant.start(relay)
        out = participant.outport("out")["queue"]
        await feeder.create_queue(QueueKind.IN, out)
        await feeder.subscribe_to_queue(out, inbox.handler)
        inq = participant.inport("in")["queue"]
        count = 3000
        for i in range(count):
            await feeder.send_to(QueueKind.OUT, inq, {"seq": i})
        await inbox.wait_for(count, WAIT)
        await asyncio.wait_for(participant.stop(), WAIT)
        assert [m.data["seq"] for m in inbox.messages] == list(range(count))
