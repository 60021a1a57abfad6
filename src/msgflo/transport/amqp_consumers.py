"""The queues a client consumes, resumed on every new connection.

A consumer the broker refuses (the queue is missing, access is refused, another connection holds
it exclusively) is an error naming the queue and the broker's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiormq.exceptions
from aiormq.abc import DeliveredMessage

from msgflo.transport.amqp_errors import describe, refusal
from msgflo.transport.amqp_session import Session, Token, WaitSession
from msgflo.transport.base import Address, TransportError

log = logging.getLogger("msgflo.transport.amqp")

Process = Callable[[DeliveredMessage, Token | None], Awaitable[None]]
"""Handles one delivery; the token is None for a consumer without acks."""

_REFUSED = (
    aiormq.exceptions.ChannelAccessRefused,
    aiormq.exceptions.ChannelLockedResource,
    aiormq.exceptions.ChannelNotFoundEntity,
    aiormq.exceptions.ChannelPreconditionFailed,
)
"""What the broker answers to a consumer it will not have: 403, 405, 404, 406."""


@dataclass(eq=False)
class Consumer:
    queue: str
    no_ack: bool
    process: Process
    inbox: asyncio.Queue[tuple[int, DeliveredMessage] | None] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None
    tag: str | None = None
    cancelled: bool = False


class Consumers:
    """One client's consumers by queue, each with a worker task that processes its deliveries
    one after the other, in delivery order.

    Deliveries carry the generation of the session they came on: once a new session begins,
    those of earlier ones are dropped unprocessed, since their tags cannot be acked on it and the
    broker redelivers them.
    """

    def __init__(
        self, address: Address, wait_session: WaitSession, requeue: Callable[[Token], None]
    ) -> None:
        self._address = address
        self._wait_session = wait_session
        self._requeue = requeue
        self._by_queue: dict[str, Consumer] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._generation = 0

    def __contains__(self, queue: str) -> bool:
        return queue in self._by_queue

    def begin_session(self) -> int:
        """A new connection is opening: its generation number, which makes earlier ones stale."""
        self._generation += 1
        return self._generation

    async def consume(self, queue: str, process: Process, *, no_ack: bool) -> None:
        if queue in self._by_queue:
            raise TransportError(f"already subscribed to queue {queue!r}")
        consumer = Consumer(queue, no_ack, process)
        consumer.worker = asyncio.create_task(self._work(consumer))
        self._by_queue[queue] = consumer
        session = await self._wait_session()
        try:
            await self._start(session, consumer)
        except TransportError:
            self._by_queue.pop(queue, None)
            consumer.worker.cancel()
            raise
        except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
            # The connection dropped meanwhile; the next session starts the consumer.
            log.info("consuming %r deferred to the next connection: %s", queue, describe(exc))

    async def resume(self, session: Session) -> None:
        """Start every consumer on a new session; one refused is logged and kept for the next."""
        for consumer in list(self._by_queue.values()):
            try:
                await self._start(session, consumer)
            except TransportError as exc:
                log.error("%s", exc)  # kept: the next connection tries again

    async def _start(self, session: Session, consumer: Consumer) -> None:
        """Start ``consumer`` on ``session``; a refusal raises :class:`TransportError`.

        The queue is looked up on the topology channel first, so that a missing queue or one
        that another connection holds exclusively closes that channel, not the data channel.
        """
        try:
            await (await session.topology()).queue_declare(consumer.queue, passive=True)
            generation = session.generation
            unsettled = session.unsettled

            def on_delivery(raw: DeliveredMessage) -> None:
                tag = raw.delivery_tag
                if not consumer.no_ack and tag is not None:
                    unsettled[tag] = None
                    if consumer.cancelled:
                        self._requeue(Token(generation, tag))
                        return
                if not consumer.cancelled:
                    consumer.inbox.put_nowait((generation, raw))

            consumer.tag = await session.data.consume(
                consumer.queue, on_delivery, no_ack=consumer.no_ack
            )
        except _REFUSED as exc:
            message = (
                f"consuming queue {consumer.queue!r} refused by {self._address.redacted()}: "
                f"{refusal(exc)}"
            )
            log.error("%s", message)
            raise TransportError(message) from exc

    async def _work(self, consumer: Consumer) -> None:
        """Handler calls for one queue run one after the other, in delivery order."""
        while (item := await consumer.inbox.get()) is not None:
            generation, raw = item
            if not consumer.no_ack and generation != self._generation:
                continue  # its channel is gone; the broker redelivers it
            tag = raw.delivery_tag
            token = None if consumer.no_ack or tag is None else Token(generation, tag)
            try:
                await consumer.process(raw, token)
            except Exception:
                log.exception("processing a message from %r failed", consumer.queue)

    async def cancel(self, queue: str, session: Session | None) -> None:
        """Stop consuming ``queue``: what was delivered and not yet processed goes back to it."""
        consumer = self._by_queue.pop(queue, None)
        if consumer is None:
            return
        consumer.cancelled = True
        if session is not None and session.alive and consumer.tag:
            with contextlib.suppress(aiormq.exceptions.AMQPError, ConnectionError):
                await session.data.channel.basic_cancel(consumer.tag)
        while not consumer.inbox.empty():
            item = consumer.inbox.get_nowait()
            if item is not None and not consumer.no_ack and item[1].delivery_tag is not None:
                self._requeue(Token(item[0], item[1].delivery_tag))
        consumer.inbox.put_nowait(None)
        if consumer.worker is not None:
            self._stopping.add(consumer.worker)
            consumer.worker.add_done_callback(self._stopping.discard)

    def workers(self) -> list[asyncio.Task[None]]:
        """Every worker task, those still finishing after :meth:`cancel` included."""
        running = [c.worker for c in self._by_queue.values() if c.worker]
        return list(self._stopping) + running

    def clear(self) -> None:
        self._by_queue.clear()
