"""What the batched legacy hand-off must keep: order, at-least-once, a free event loop."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

import msgflo
from msgflo.deadletter import FAILURES_CHANNEL
from msgflo.legacy_worker import LEGACY_INFLIGHT
from msgflo.observe.figures import FIGURES_CHANNEL
from msgflo.transport import Address, Message, QueueKind
from msgflo.transport.memory import MemoryClient

WAIT = 10.0


class RecordingClient(MemoryClient):
    """Notes every send and settlement in the order the transport is asked for them."""

    def __init__(self, url: str) -> None:
        super().__init__(Address.parse(url))
        self.log: list[tuple[str, Any]] = []
        self.settled = 0
        self.expected = 0
        self.all_settled = asyncio.Event()

    def _note_settled(self) -> None:
        self.settled += 1
        if self.settled == self.expected:
            self.all_settled.set()

    async def send_raw(self, kind: QueueKind, name: str, body: bytes) -> None:
        if name not in (FAILURES_CHANNEL, FIGURES_CHANNEL):  # reports, not its output
            self.log.append(("send", body))
        await super().send_raw(kind, name, body)

    async def ack_message(self, message: Message) -> None:
        self.log.append(("ack", message.data))
        self._note_settled()
        await super().ack_message(message)

    async def nack_message(
        self,
        message: Message,
        *,
        requeue: bool = False,
        reason: Mapping[str, Any] | None = None,
    ) -> None:
        self.log.append(("nack", message.data))
        self._note_settled()
        await super().nack_message(message, requeue=requeue, reason=reason)


class TwoThenAck(msgflo.Participant):
    def __init__(self, role: str) -> None:
        msgflo.Participant.__init__(self, {"outports": [{"id": "a"}, {"id": "b"}]}, role)

    def process(self, inport: str, msg: Any) -> None:  # type: ignore[override]
        self.send("a", msg.data)
        self.send("b", msg.data)
        if msg.data % 7 == 0:
            self.nack(msg)
        else:
            self.ack(msg)


class Gate(msgflo.Participant):
    """Blocks in ``process`` until the test opens the gate."""

    def __init__(self, role: str) -> None:
        msgflo.Participant.__init__(self, {}, role)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.taken: list[Message] = []

    def process(self, inport: str, msg: Any) -> None:  # type: ignore[override]
        self.taken.append(msg)
        self.entered.set()
        self.gate.wait(WAIT)
        self.send("out", msg.data)
        self.ack(msg)


async def test_sends_and_settlements_keep_process_order_under_load() -> None:
    """Two sends then an ack (or nack) per message, 3,000 messages as fast as they come: the
    transport must be asked in exactly that order, so no ack overtakes the sends before it."""
    url = f"memory://order-{uuid.uuid4().hex}"
    client, feeder = RecordingClient(url), MemoryClient(Address.parse(url))
    await client.connect()
    await feeder.connect()
    participant = TwoThenAck("o")
    await participant.start(client)
    count = client.expected = 3000
    inq = participant.inport("in")["queue"]
    for i in range(count):
        await feeder.send_raw(QueueKind.IN, inq, str(i).encode())
    await asyncio.wait_for(client.all_settled.wait(), WAIT)
    await participant.stop()
    await client.disconnect()
    await feeder.disconnect()
    expected: list[tuple[str, Any]] = []
    for i in range(count):
        body = str(i).encode()
        expected += [("send", body), ("send", body), ("nack" if i % 7 == 0 else "ack", i)]
    assert client.log == expected


async def test_blocked_process_lets_heartbeats_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MSGFLO_DISCOVERY_PERIOD", "0.11")  # a beat every 50 ms
    url = f"memory://beat-{uuid.uuid4().hex}"
    async with msgflo.testing.participant(Gate("g"), "g", broker=url) as probe:
        gate = probe.participant
        assert isinstance(gate, Gate)
        announcements: list[Message] = []
        three = asyncio.Event()
        broker = msgflo.transport.get_broker(url)
        await broker.connect()

        async def seen(message: Message) -> None:
            announcements.append(message)
            if len(announcements) >= 3:
                three.set()

        await broker.subscribe_participant_change(seen)
        for i in range(LEGACY_INFLIGHT + 50):
            await probe.send("in", i)
        await asyncio.wait_for(asyncio.to_thread(gate.entered.wait, WAIT), WAIT)
        await asyncio.wait_for(three.wait(), WAIT)  # the loop is free while process blocks
        assert len(gate.taken) == 1
        gate.gate.set()
        assert [await probe.receive("out") for _ in range(LEGACY_INFLIGHT + 50)] == list(
            range(LEGACY_INFLIGHT + 50)
        )
        await broker.disconnect()


async def test_stop_finishes_what_the_thread_was_given() -> None:
    """Messages handed to the thread are processed, and their acks carried out, before stop
    returns: nothing taken from a queue is dropped by a clean shutdown."""
    participant = Gate("s")
    url = f"memory://stop-{uuid.uuid4().hex}"
    async with msgflo.testing.participant(participant, "s", broker=url):
        for i in range(50):
            await participant.deliver("in", i)
        participant.gate.set()
        await participant.stop()
        assert [m.data for m in participant.taken] == list(range(50))
        assert all(m.acked for m in participant.taken)
