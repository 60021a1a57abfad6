"""The AMQP fast path: the only module that touches aiormq's internals.

aiormq's per-message calls cost one socket write, one future and a pass through a 10-item write
queue per publish and one task per delivery (a relay topped out near 3,500 msg/s at ~200 us of
CPU per message).  On the same connection, this module instead:

- marshals publishes, acks and nacks into a per-session buffer (the ``basic.publish`` method
  frame cached per route, the content header from a template with the body size spliced in, so
  the bytes are exactly pamqp's) and hands it to aiormq's connection writer once per event-loop
  turn: one socket write for everything a turn produced;
- assembles deliveries in the data channel's frame queue as the connection reads them and hands
  each to its consumer's callback, and passes publisher confirms straight to the session.

The only wire difference from aiormq's ``basic_publish`` is that no random ``message-id`` is
set (aiormq adds one to match returned messages; we never publish ``mandatory``, and neither
msgflo-nodejs nor amqplib sets one).

:func:`unavailable` checks once, at connect, that the library versions are the tested ones and
that every attribute used here exists; when it finds a difference, the transport runs
:class:`msgflo.transport.amqp_session.PublicPath` (aiormq's public channel API) instead.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import Callable
from typing import Any

import aiormq
import aiormq.abc
import pamqp.frame
from aiormq.abc import ChannelFrame, DeliveredMessage
from aiormq.tools import awaitable
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from msgflo.transport._adapter import Range, missing, untested

TESTED: dict[str, Range] = {"aiormq": ((7, 2), (7, 3)), "pamqp": ((4, 0), (4, 1))}
"""Library versions (lowest, first untested) whose internals this module was checked against."""

_CONNECTION_ATTRIBUTES = ("last_channel_lock", "channels", "write_queue", "connection_tune")
_CHANNEL_FRAMES = ("frames",)

MAX_CACHED_ROUTES = 1024
"""Marshalled ``basic.publish`` frames kept per session, one per (exchange, routing key)."""
FRAME_BODY = 3
FRAME_END = b"\xce"
FRAME_OVERHEAD = 8
"""Type, channel, size and end octet around a frame's payload."""
HEADER_SIZE_AT = 11
"""Offset of the 8-octet body size in a marshalled content header frame."""
_BODY_FRAME = struct.Struct(">BHI")

Confirm = Callable[[int, bool, bool], None]
"""``(delivery_tag, multiple, ack)`` of a publisher confirm, called as its frame is read."""
Deliveries = Callable[[DeliveredMessage], None]


def unavailable(amqp: aiormq.Connection) -> str | None:
    """Why the fast path cannot run on the open connection ``amqp``, or None."""
    reason = untested(TESTED)
    if reason is not None:
        return reason
    lacking = missing(amqp, _CONNECTION_ATTRIBUTES)
    # The channel's frame queue is an instance attribute: look for its assignment.
    lacking += [
        f"Channel.{name}"
        for name in _CHANNEL_FRAMES
        if name not in aiormq.Channel.__init__.__code__.co_names
    ]
    if lacking:
        return f"aiormq lacks {', '.join(lacking)}"
    return None


class _InlineFrames(asyncio.Queue[tuple[int, Any]]):
    """The data channel's frame queue, handling deliveries and confirms as they are read.

    aiormq's connection reader puts every frame of a channel here and the channel's own reader
    task takes them out again, one task switch per frame, and then starts a task per delivery.
    Here a delivery (method, header and body frames) is assembled as the frames arrive and handed
    to its consumer's callback, and a publisher confirm goes straight to the session; every other
    frame (RPC replies, returns, close) is queued for aiormq's reader as before, in order.
    """

    def __init__(self, channel: DataChannel) -> None:
        super().__init__()
        self.channel = channel
        self.delivery: spec.Basic.Deliver | None = None
        self.header: ContentHeader | None = None
        self.parts: list[bytes] = []
        self.received = 0

    async def put(self, item: tuple[int, Any]) -> None:
        frame = item[1]
        if self.delivery is not None:
            self._content(frame)
        elif isinstance(frame, spec.Basic.Deliver):
            self.delivery = frame
        elif isinstance(frame, spec.Basic.Ack | spec.Basic.Nack):
            ack = isinstance(frame, spec.Basic.Ack)
            self.channel.on_confirm(frame.delivery_tag or 0, bool(frame.multiple), ack)
        else:
            self.put_nowait(item)

    def _content(self, frame: Any) -> None:
        if self.header is None:
            if not isinstance(frame, ContentHeader):
                raise ValueError(f"unexpected frame {frame!r} instead of a content header")
            self.header = frame
        elif isinstance(frame, ContentBody):
            self.parts.append(frame.value)
            self.received += len(frame.value)
        else:
            raise ValueError(f"unexpected frame {frame!r} inside a message body")
        if self.received < (self.header.body_size or 0):
            return
        delivery, header, body = self.delivery, self.header, b"".join(self.parts)
        assert delivery is not None
        self.delivery, self.header, self.parts, self.received = None, None, [], 0
        callback = self.channel.deliveries.get(delivery.consumer_tag or "")
        if callback is not None:
            callback(DeliveredMessage(delivery, header, body, self.channel))


class DataChannel(aiormq.Channel):
    """aiormq's channel with the per-message paths replaced (see :class:`_InlineFrames`).

    aiormq keeps a future per publish and starts a task per delivery; here deliveries reach
    their consumer's callback directly and confirms reach the session, which tracks publishes by
    delivery tag in one ordered dict.  Opening, closing, QoS and consume/cancel stay aiormq's.
    """

    def __init__(
        self, connection: aiormq.abc.AbstractConnection, number: int, on_confirm: Confirm
    ) -> None:
        super().__init__(connection, number, publisher_confirms=True)
        self.frames = _InlineFrames(self)
        self.on_confirm = on_confirm
        self.deliveries: dict[str, Callable[[DeliveredMessage], None]] = {}

    async def consume(
        self, queue: str, callback: Callable[[DeliveredMessage], None], *, no_ack: bool
    ) -> str:
        """``basic.consume`` whose deliveries reach ``callback`` as they are read."""
        tag = f"ctag{self.number}.{uuid.uuid4().hex}"
        self.deliveries[tag] = callback  # before the broker can deliver anything
        await self.basic_consume(queue, awaitable(callback), no_ack=no_ack, consumer_tag=tag)
        return tag


class FastPath:
    """The data channel of one session, written and read on the fast path.

    Publishes, acks and nacks are not written one by one: their frames are marshalled into
    ``out`` and :meth:`flush` hands everything gathered in one event-loop turn to aiormq's
    connection writer as one chunk, i.e. one socket write.  The frames are exactly those aiormq
    would write for ``basic_publish`` (without the random ``message-id``) and
    ``basic_ack``/``basic_nack``.
    """

    def __init__(
        self, amqp: aiormq.Connection, channel: DataChannel, properties: spec.Basic.Properties
    ) -> None:
        self.amqp = amqp
        self.channel: aiormq.abc.AbstractChannel = channel
        self._data = channel
        self.out: list[bytes] = []
        self._blocked: asyncio.Task[None] | None = None
        self._methods: dict[tuple[str, str], bytes] = {}
        self._max_chunk = amqp.connection_tune.frame_max - FRAME_OVERHEAD
        template = pamqp.frame.marshal(ContentHeader(0, 0, properties), channel.number)
        self._header = (template[:HEADER_SIZE_AT], template[HEADER_SIZE_AT + 8 :])

    @classmethod
    async def open(
        cls, amqp: aiormq.Connection, properties: spec.Basic.Properties, on_confirm: Confirm
    ) -> FastPath:
        """A data channel numbered and registered the way aiormq's ``Connection.channel`` does it."""
        async with amqp.last_channel_lock:
            number = max(amqp.channels, default=0) + 1
            channel = DataChannel(amqp, number, on_confirm)
            amqp.channels[number] = channel
        await channel.open()
        return cls(amqp, channel, properties)

    async def consume(self, queue: str, callback: Deliveries, *, no_ack: bool) -> str:
        return await self._data.consume(queue, callback, no_ack=no_ack)

    def publish(self, exchange: str, routing_key: str, body: bytes) -> None:
        number = self._data.number
        key = (exchange, routing_key)
        method = self._methods.get(key)
        if method is None:
            if len(self._methods) >= MAX_CACHED_ROUTES:
                self._methods.clear()
            method = pamqp.frame.marshal(
                spec.Basic.Publish(exchange=exchange, routing_key=routing_key), number
            )
            self._methods[key] = method
        head, tail = self._header
        out = self.out
        out.append(method)
        out.append(head + len(body).to_bytes(8, "big") + tail)
        size = self._max_chunk
        for start in range(0, len(body), size):
            chunk = body[start : start + size]
            out.append(_BODY_FRAME.pack(FRAME_BODY, number, len(chunk)) + chunk + FRAME_END)

    def method(self, frame: spec.Basic.Ack | spec.Basic.Nack) -> None:
        self.out.append(pamqp.frame.marshal(frame, self._data.number))

    def flush(self) -> None:
        """Hand what this turn gathered to the connection writer, as one chunk."""
        if not self.out or self._blocked is not None or self._data.is_closed:
            return
        chunk = ChannelFrame(payload=b"".join(self.out), should_close=False)
        self.out.clear()
        try:
            self.amqp.write_queue.put_nowait(chunk)
        except asyncio.QueueFull:  # heartbeats and RPCs share the queue: wait our turn, in order
            self._blocked = asyncio.create_task(self._put(chunk))

    async def _put(self, chunk: ChannelFrame) -> None:
        await self.amqp.write_queue.put(chunk)
        self._blocked = None
        self.flush()

    async def drain(self) -> None:
        """Flush and wait until the writer has handed everything to the socket."""
        if self._blocked is not None:
            await self._blocked
        if self._data.is_closed:
            return
        done = asyncio.get_running_loop().create_future()
        chunk = ChannelFrame(payload=b"".join(self.out), should_close=False, drain_future=done)
        self.out.clear()
        await self.amqp.write_queue.put(chunk)
        await done

    def close(self) -> None:
        if self._blocked is not None:
            self._blocked.cancel()
