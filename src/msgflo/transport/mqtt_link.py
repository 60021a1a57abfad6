"""An MQTT link: one connected aiomqtt session and how messages go in and out of it.

:class:`Link` is what the client needs of a session; two classes provide it.
:class:`msgflo.transport._paho.FastLink` bypasses most of paho and aiomqtt for speed;
:class:`PublicLink` keeps to aiomqtt's public API, for library versions the fast path was not
checked against and for ``?fastpath=0``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import aiomqtt

from msgflo.transport import mqtt5
from msgflo.transport.reconnect import cause

log = logging.getLogger("msgflo.transport.mqtt")
"""One logger for the whole transport, whichever of its modules speaks."""


class Sent(Protocol):
    """A publish handed to the library: done once written out (QoS 0) or acknowledged."""

    def done(self) -> bool: ...


class Link(Protocol):
    """One connected aiomqtt session and how messages go in and out of it.

    :class:`msgflo.transport._paho.FastLink` and :class:`PublicLink` implement it.
    """

    session: aiomqtt.Client

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    def publish(
        self, topic: str, body: bytes, qos: int, *, retain: bool = False
    ) -> Sent | None: ...

    def write_pending(self) -> None: ...

    def take_unsent(self) -> list[tuple[str, bytes]]: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    async def lost(self) -> BaseException | None: ...

    def abandon(self) -> None: ...

    async def close(self) -> None: ...


class _Task:
    """A publish running as an aiomqtt call: done once it returned without an error."""

    __slots__ = ("task",)

    def __init__(self, task: asyncio.Task[None]) -> None:
        self.task = task

    def done(self) -> bool:
        task = self.task
        return task.done() and not task.cancelled() and task.exception() is None


class PublicLink:
    """A session on aiomqtt's public API only: slower (a task per publish and per delivery
    wake-up), used when the fast path's check fails or with ``?fastpath=0``.

    aiomqtt cannot stop reading its socket, so :meth:`pause_reading` stops taking deliveries
    from aiomqtt's queue only: memory is bounded on the fast path alone.
    """

    def __init__(self, session: aiomqtt.Client, deliver: Callable[[str, bytes], None]) -> None:
        self.session = session
        self._deliver = deliver
        self._reader: asyncio.Task[None] | None = None
        self._gone: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._reading = asyncio.Event()
        self._reading.set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self._reader is not None and not self._gone.done()

    def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.session.messages:
                payload = message.payload
                if isinstance(payload, str):
                    body = payload.encode()
                elif isinstance(payload, bytes | bytearray):
                    body = bytes(payload)
                else:
                    body = b"" if payload is None else str(payload).encode()
                body = mqtt5.with_user_properties(body, message.properties)
                self._deliver(message.topic.value, body)
                await self._reading.wait()
        except aiomqtt.MqttError as exc:
            if not self._gone.done():
                self._gone.set_result(exc.__cause__ or exc)

    def publish(self, topic: str, body: bytes, qos: int, *, retain: bool = False) -> Sent | None:
        if not self.connected:
            return None
        task = asyncio.get_running_loop().create_task(self._publish(topic, body, qos, retain))
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return _Task(task)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed publish is sent again or was QoS 0

    async def _publish(self, topic: str, body: bytes, qos: int, retain: bool) -> None:
        try:
            properties = mqtt5.publish_properties(body)
            await self.session.publish(topic, body, qos, retain, properties=properties)
        except aiomqtt.MqttError as exc:
            log.debug("publish to %r failed: %s", topic, cause(exc))
            raise

    def write_pending(self) -> None:
        """Every publish is written by its own task."""

    def take_unsent(self) -> list[tuple[str, bytes]]:
        return []

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    async def lost(self) -> BaseException | None:
        return await self._gone

    def abandon(self) -> None:
        if not self._gone.done():
            self._gone.set_result(None)
        for task in [self._reader, *self._tasks]:
            if task is not None:
                task.cancel()

    async def close(self) -> None:
        self.abandon()
        with contextlib.suppress(aiomqtt.MqttError):
            await self.session.__aexit__(None, None, None)
