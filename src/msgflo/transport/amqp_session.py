"""One AMQP connection and what runs on it: the data channel (publishes, confirms, acks,
deliveries) and a channel for declarations.

A client opens a new :class:`Session` for every connection; the generation number it is given
tells a delivery of an earlier connection (whose tag means nothing on this one) from a current
one.  The data channel runs on :mod:`msgflo.transport._aiormq` when its check passes, and on
:class:`PublicPath` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import aio_pika
import aiormq
import aiormq.abc
import aiormq.exceptions
from aiormq.abc import AbstractChannel, DeliveredMessage
from aiormq.tools import awaitable
from pamqp import commands as spec

from msgflo.transport import _aiormq


class Token(NamedTuple):
    """Identifies a delivery: the delivery tag is only meaningful on its own channel."""

    generation: int
    tag: int


@dataclass(slots=True, eq=False)
class Publish:
    seq: int
    exchange: str
    routing_key: str
    body: bytes


Confirm = Callable[[int, bool, bool], None]
"""``(delivery_tag, multiple, ack)`` of a publisher confirm."""
WaitSession = Callable[[], Awaitable["Session"]]
"""The client's live session, waiting while it reconnects (raises once the client is closed)."""


class DataPath(Protocol):
    """How one session's publishes, acks and deliveries reach the data channel.

    :class:`msgflo.transport._aiormq.FastPath` and :class:`PublicPath` implement it.
    """

    channel: AbstractChannel

    async def consume(
        self, queue: str, callback: Callable[[DeliveredMessage], None], *, no_ack: bool
    ) -> str: ...

    def publish(self, exchange: str, routing_key: str, body: bytes) -> None: ...

    def method(self, frame: spec.Basic.Ack | spec.Basic.Nack) -> None: ...

    def flush(self) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


class PublicPath:
    """A data channel on aiormq's public API only: one call (and one task) per publish, ack and
    delivery; used when the fast path's check fails or with ``?fastpath=0``.

    Publishes and acks are written in the order they are made (each task takes the channel's
    lock in turn); aiormq adds a random ``message-id`` property to every publish.
    """

    def __init__(
        self, channel: aiormq.Channel, properties: spec.Basic.Properties, on_confirm: Confirm
    ) -> None:
        self.channel: AbstractChannel = channel
        self._channel = channel
        self._properties = properties
        self._on_confirm = on_confirm
        self._tag = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls, amqp: aiormq.Connection, properties: spec.Basic.Properties, on_confirm: Confirm
    ) -> PublicPath:
        channel = await amqp.channel(publisher_confirms=True)
        assert isinstance(channel, aiormq.Channel)
        return cls(channel, properties, on_confirm)

    async def consume(
        self, queue: str, callback: Callable[[DeliveredMessage], None], *, no_ack: bool
    ) -> str:
        ok = await self.channel.basic_consume(queue, awaitable(callback), no_ack=no_ack)
        return ok.consumer_tag or ""

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def publish(self, exchange: str, routing_key: str, body: bytes) -> None:
        self._tag += 1
        self._spawn(self._publish(self._tag, exchange, routing_key, body))

    async def _publish(self, tag: int, exchange: str, routing_key: str, body: bytes) -> None:
        try:
            await self._channel.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=self._properties,
                wait=False,
            )
        except aiormq.exceptions.DeliveryError:
            self._on_confirm(tag, False, False)
        except aiormq.exceptions.AMQPError:
            return  # the channel is gone: the next session publishes it again
        else:
            self._on_confirm(tag, False, True)

    def method(self, frame: spec.Basic.Ack | spec.Basic.Nack) -> None:
        self._spawn(self._method(frame))

    async def _method(self, frame: spec.Basic.Ack | spec.Basic.Nack) -> None:
        tag = frame.delivery_tag or 0
        with contextlib.suppress(aiormq.exceptions.AMQPError):
            if isinstance(frame, spec.Basic.Ack):
                await self.channel.basic_ack(tag, multiple=bool(frame.multiple))
            else:
                await self.channel.basic_nack(tag, requeue=bool(frame.requeue))

    def flush(self) -> None:
        """Every publish and ack is written by its own task."""

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()


class Session:
    """One live connection with its data channel (confirms, consumers) and a topology channel.

    Declarations run on their own channel so that a refused one (406, 404) closes only that
    channel and never the one carrying deliveries and their unacked tags.  Publishes are tracked
    by delivery tag in one ordered dict, confirms (``multiple`` or not) pop them.
    """

    def __init__(
        self,
        generation: int,
        connection: aio_pika.abc.AbstractConnection,
        amqp: aiormq.Connection,
        path: DataPath,
    ) -> None:
        self.generation = generation
        self.connection = connection
        self.amqp = amqp
        self.data = path
        self._write = path.publish
        self.topo: AbstractChannel | None = None
        self.unsettled: OrderedDict[int, None] = OrderedDict()
        """Delivery tags not yet acked or nacked, in delivery order."""
        self.inflight: OrderedDict[int, Publish] = OrderedDict()
        """Publishes written on this channel and not yet confirmed, by delivery tag."""
        self.next_tag = 1

    @classmethod
    async def open(
        cls,
        generation: int,
        url: str,
        timeout: float,
        prefetch: int,
        properties: spec.Basic.Properties,
        on_confirm: Callable[[Session, int, bool, bool], None],
        fastpath: Callable[[aiormq.Connection], bool],
        tls: ssl.SSLContext | None,
    ) -> Session:
        connection = await aio_pika.connect(url, timeout=timeout, ssl_context=tls)
        try:
            transport = connection.transport
            assert transport is not None
            assert isinstance(transport.connection, aiormq.Connection)
            amqp = transport.connection
            opened: list[Session] = []  # confirms cannot arrive before the session exists

            def confirm(tag: int, multiple: bool, ack: bool) -> None:
                on_confirm(opened[0], tag, multiple, ack)

            path_type = _aiormq.FastPath if fastpath(amqp) else PublicPath
            path = await path_type.open(amqp, properties, confirm)
            await path.channel.basic_qos(prefetch_count=prefetch)
            session = cls(generation, connection, amqp, path)
            opened.append(session)
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        return session

    @property
    def alive(self) -> bool:
        return not self.data.channel.is_closed

    async def topology(self) -> AbstractChannel:
        if self.topo is None or self.topo.is_closed:
            self.topo = await self.amqp.channel(publisher_confirms=False)
        return self.topo

    def publish(self, pub: Publish) -> None:
        self._write(pub.exchange, pub.routing_key, pub.body)
        self.inflight[self.next_tag] = pub
        self.next_tag += 1

    def method(self, frame: spec.Basic.Ack | spec.Basic.Nack) -> None:
        self.data.method(frame)

    def flush(self) -> None:
        """Hand what this turn gathered to the connection writer."""
        if self.alive:
            self.data.flush()

    async def drain(self) -> None:
        """Flush and wait until the writer has handed everything to the socket."""
        await self.data.drain()

    async def wait_closed(self) -> None:
        observers = [self.data.channel.closing, self.amqp.closing]
        try:
            await asyncio.wait(observers, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for observer in observers:
                observer.cancel()

    async def close(self) -> None:
        self.data.close()
        with contextlib.suppress(Exception):
            await self.connection.close()
