"""Run one participant on a broker (the memory transport by default), send to its inports,
and await what comes out of its outports.

    async with msgflo.testing.participant(Upper) as p:
        await p.send("in", "abc")
        assert await p.receive("out") == "ABC"
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from msgflo.participant import Participant
from msgflo.runner import instantiate
from msgflo.transport import Binding, Broker, Message, QueueKind, get_broker

T = TypeVar("T")

__all__ = ["ParticipantProbe", "participant"]


class ParticipantProbe:
    """A running participant with a test harness around its ports."""

    def __init__(self, participant: Participant, client: Broker) -> None:
        self.participant = participant
        self.client = client
        self._outputs: dict[str, asyncio.Queue[Message]] = {}
        self._dead: dict[str, asyncio.Queue[Any]] = {}
        self.acked: dict[str, list[Any]] = {}
        """Per inport, the data of each message the participant acked, in order."""
        self.nacked: dict[str, list[Any]] = {}
        """Per inport, the data of each message the participant nacked (failed), in order."""
        ports = {port["queue"]: port["id"] for port in participant.definition["inports"]}

        def settled(message: Message, ack: bool) -> None:
            port = ports.get(message.queue, message.queue)
            (self.acked if ack else self.nacked).setdefault(port, []).append(message.data)

        participant.on_settled(settled)

    async def _capture(self, port: str, queue: str) -> None:
        received: asyncio.Queue[Message] = asyncio.Queue()
        self._outputs[port] = received

        async def keep(message: Message) -> None:
            received.put_nowait(message)
            await self.client.ack_message(message)

        await self.client.create_queue(QueueKind.IN, queue)
        await self.client.subscribe_to_queue(queue, keep)

    async def _capture_dead(self, port: str, queue: str) -> None:
        """Failed messages of an inport go to ``dead-<queue>`` (an exchange on RabbitMQ and
        memory, a topic on MQTT, a subject on NATS): watching it keeps them for
        :meth:`receive_dead` without taking them from anyone who consumes the dead letters."""
        received: asyncio.Queue[Any] = asyncio.Queue()
        self._dead[port] = received

        async def keep(_binding: Binding, data: Any) -> None:
            received.put_nowait(data)

        await self.client.subscribe_data(Binding(f"dead-{queue}", f"dead-{queue}"), keep)

    async def send(self, port: str, data: Any) -> None:
        """Put ``data`` on the participant's inport queue, as an upstream node would."""
        queue = self.participant.inport(port)["queue"]
        await self.client.send_to(QueueKind.IN, queue, data)

    async def receive_message(self, port: str, timeout: float = 5.0) -> Message:
        if port not in self._outputs:
            self.participant.outport(port)  # raises, naming the ports it has
        missing = f"nothing arrived on {self.participant.role}.{port}"
        return await _next(self._outputs[port], timeout, missing)

    async def receive(self, port: str, timeout: float = 5.0) -> Any:
        """The data of the next message on ``port``; fails the test after ``timeout`` seconds."""
        return (await self.receive_message(port, timeout)).data

    async def receive_dead(self, port: str, timeout: float = 5.0) -> Any:
        """The data of the next message the participant dead-lettered from inport ``port``:
        the payload that failed, as it came."""
        if port not in self._dead:
            self.participant.inport(port)  # raises, naming the ports it has
            raise AssertionError(f"dead letters are not captured on {self.client.url}")
        missing = f"no dead letter from {self.participant.role}.{port}"
        return await _next(self._dead[port], timeout, missing)

    def pending(self, port: str) -> int:
        """How many messages arrived on ``port`` and were not received yet."""
        return self._outputs[port].qsize()


async def _next(waiting: asyncio.Queue[T], timeout: float, missing: str) -> T:
    try:
        return await asyncio.wait_for(waiting.get(), timeout)
    except TimeoutError:
        # A test failure: pytest shows the message; a chained TimeoutError would be noise.
        raise AssertionError(f"{missing} within {timeout:g} s") from None


@asynccontextmanager
async def participant(
    target: type[Participant] | Participant,
    role: str = "test",
    *,
    broker: str | None = None,
) -> AsyncIterator[ParticipantProbe]:
    """Run ``target`` under ``role`` on ``broker`` (default: a fresh ``memory://`` broker)."""
    client = get_broker(broker or f"memory://test-{uuid.uuid4().hex}")
    await client.connect()
    running = instantiate(target, role)
    running.validate_outgoing = True
    probe = ParticipantProbe(running, client)
    try:
        for port in running.definition["outports"]:
            await probe._capture(port["id"], port["queue"])
        if client.dead_letters:
            for port in running.definition["inports"]:
                await probe._capture_dead(port["id"], port["queue"])
        await running.start(client)
        yield probe
    finally:
        await running.stop()
        await client.disconnect()
