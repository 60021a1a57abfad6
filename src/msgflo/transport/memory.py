"""In-process transport: ``memory://NAME``.

It models the AMQP topology (fanout exchanges, queues with competing consumers, dead-letter
exchanges) rather than the original's synchronous ``direct`` emitter, so logic tested here
behaves as it will on RabbitMQ: delivery is asynchronous, payloads always cross as bytes (a JSON
round-trip that hides no serialisation bug), messages wait in a queue until someone consumes
them, and unacked messages go back to the queue when their consumer leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from msgflo.transport.base import (
    DISCOVERY_QUEUE,
    Address,
    Binding,
    BindingType,
    Broker,
    Client,
    DataHandler,
    Message,
    MessageHandler,
    QueueDepth,
    QueueKind,
    TransportError,
    decode,
)
from msgflo.transport.reason import Reason, bounded

log = logging.getLogger(__name__)

_Item = bytes | tuple[bytes, Reason]
"""What a queue holds: a body, or a dead letter's body with its reason (its "headers")."""

_ids = itertools.count(1)


@dataclass(eq=False)
class _Queue:
    """Messages wait in ``backlog`` until a consumer exists; then they are dealt out to the
    consumers in turn, as RabbitMQ does, so competing consumers really share the work."""

    name: str
    dead_letter: str
    backlog: deque[_Item] = field(default_factory=deque)
    consumers: list[_Consumer] = field(default_factory=list)
    turn: int = 0

    def put(self, item: _Item) -> None:
        if not self.consumers:
            self.backlog.append(item)
            return
        self.turn = (self.turn + 1) % len(self.consumers)
        self.consumers[self.turn].inbox.put_nowait(item)

    def attach(self, consumer: _Consumer) -> None:
        self.consumers.append(consumer)
        while self.backlog:
            self.put(self.backlog.popleft())

    def detach(self, consumer: _Consumer, leftovers: list[_Item]) -> None:
        self.consumers.remove(consumer)
        for item in leftovers:
            self.put(item)


@dataclass(eq=False)
class _Delivery:
    queue: _Queue
    item: _Item
    consumer: _Consumer

    @property
    def body(self) -> bytes:
        return self.item[0] if isinstance(self.item, tuple) else self.item


class _Consumer:
    """One subscription: a task that takes from its inbox and calls the handler in order."""

    def __init__(self, hub: _Hub, queue: _Queue, handler: MessageHandler) -> None:
        self.hub = hub
        self.queue = queue
        self.handler = handler
        self.inbox: asyncio.Queue[_Item] = asyncio.Queue()
        self.unacked: set[_Delivery] = set()
        self.task = asyncio.get_running_loop().create_task(self._run())
        queue.attach(self)

    async def _run(self) -> None:
        inbox = self.inbox
        while True:
            item = await inbox.get()
            delivery = _Delivery(self.queue, item, self)
            self.unacked.add(delivery)
            body, reason = item if isinstance(item, tuple) else (item, None)
            message = Message(
                queue=self.queue.name, body=body, data=decode(body), token=delivery, reason=reason
            )
            try:
                await self.handler(message)
            except Exception:
                log.exception("handler for memory queue %r failed", self.queue.name)
                if not message.settled:
                    message.nacked = True
                    self.settle(delivery, dead_letter=True)

    def settle(
        self,
        delivery: _Delivery,
        *,
        dead_letter: bool,
        requeue: bool = False,
        reason: Reason | None = None,
    ) -> None:
        if delivery not in self.unacked:
            return
        self.unacked.discard(delivery)
        if requeue:
            self.queue.put(delivery.item)
        elif dead_letter:
            item: _Item = delivery.body if reason is None else (delivery.body, reason)
            if not self.hub.publish(self.queue.dead_letter, item):
                log.warning(
                    "dead letter of memory queue %r dropped: nothing is bound to %r",
                    self.queue.name,
                    self.queue.dead_letter,
                )

    async def stop(self) -> None:
        """Unfinished and unacked messages go back to the queue, as when a consumer dies."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        leftovers = [d.item for d in self.unacked]
        while not self.inbox.empty():
            leftovers.append(self.inbox.get_nowait())
        self.unacked.clear()
        self.queue.detach(self, leftovers)


class _Hub:
    """The broker state behind one ``memory://NAME``: shared by every client of that name."""

    def __init__(self) -> None:
        self.queues: dict[str, _Queue] = {}
        self.exchanges: dict[str, set[str]] = {}
        self.exchange_links: dict[str, set[str]] = defaultdict(set)
        self.observers: dict[str, list[tuple[Binding, DataHandler]]] = defaultdict(list)

    def declare_queue(self, name: str) -> _Queue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = _Queue(name, f"dead-{name}")
        return queue

    def declare_exchange(self, name: str) -> set[str]:
        return self.exchanges.setdefault(name, set())

    def publish(self, exchange: str, item: _Item) -> bool:
        """Fan out to every queue bound to ``exchange`` (and to linked exchanges); whether
        anyone (a queue or an observer) took it."""
        body = item[0] if isinstance(item, tuple) else item
        observers = self.observers.get(exchange, ())
        for binding, handler in observers:
            _spawn(handler(binding, decode(body)))
        taken = bool(observers)
        for queue_name in self.exchanges.get(exchange, ()):
            queue = self.queues.get(queue_name)
            if queue is not None:
                queue.put(item)
                taken = True
        for linked in self.exchange_links.get(exchange, ()):
            taken = self.publish(linked, item) or taken
        return taken


_background: set[asyncio.Task[None]] = set()


def _spawn(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


_hubs: dict[str, _Hub] = {}


def _hub_for(address: Address) -> _Hub:
    name = (address.host + address.path).strip("/") or "default"
    return _hubs.setdefault(name, _Hub())


class MemoryClient(Client):
    scheme = "memory"
    counts_queues = True

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        self._hub: _Hub | None = None
        self._consumers: dict[str, list[_Consumer]] = defaultdict(list)
        self._broadcasts: dict[str, str] = {}

    @property
    def hub(self) -> _Hub:
        if self._hub is None:
            raise TransportError(f"{self.url}: not connected")
        return self._hub

    async def connect(self) -> None:
        self._hub = _hub_for(self.address)

    async def disconnect(self) -> None:
        for consumers in self._consumers.values():
            for consumer in consumers:
                await consumer.stop()
        self._consumers.clear()
        self._hub = None

    async def create_queue(self, kind: QueueKind, name: str, *, persistent: bool = True) -> None:
        hub = self.hub
        hub.declare_exchange(name)
        if kind is QueueKind.IN:
            hub.declare_queue(name)
            hub.exchanges[name].add(name)

    async def remove_queue(self, kind: QueueKind, name: str) -> None:
        hub = self.hub
        if kind is QueueKind.IN:
            hub.queues.pop(name, None)
        else:
            hub.exchanges.pop(name, None)

    async def send_raw(self, kind: QueueKind, name: str, body: bytes) -> None:
        hub = self.hub
        if kind is QueueKind.OUT:
            hub.publish(name, body)
        else:
            queue = hub.queues.get(name)
            if queue is not None:
                queue.put(body)

    async def subscribe_to_queue(self, name: str, handler: MessageHandler) -> None:
        queue = self.hub.declare_queue(name)
        self._consumers[name].append(_Consumer(self.hub, queue, handler))

    async def unsubscribe_from_queue(self, name: str) -> None:
        for consumer in self._consumers.pop(name, []):
            await consumer.stop()

    async def ack_message(self, message: Message) -> None:
        self._settle(message, dead_letter=False)
        message.acked = True

    async def nack_message(
        self,
        message: Message,
        *,
        requeue: bool = False,
        reason: Mapping[str, Any] | None = None,
    ) -> None:
        self._settle(
            message,
            dead_letter=True,
            requeue=requeue,
            reason=None if reason is None else bounded(reason),
        )
        message.nacked = True

    @staticmethod
    def _settle(
        message: Message, *, dead_letter: bool, requeue: bool = False, reason: Reason | None = None
    ) -> None:
        delivery = message.token
        if message.settled or not isinstance(delivery, _Delivery):
            return
        delivery.consumer.settle(delivery, dead_letter=dead_letter, requeue=requeue, reason=reason)

    async def send_discovery(self, body: bytes) -> None:
        self.hub.publish(DISCOVERY_QUEUE, body)

    def held(self, name: str) -> int | None:
        return sum(c.inbox.qsize() for c in self._consumers.get(name, ()))

    async def queue_depth(self, name: str) -> QueueDepth | None:
        """Exact: what waits for a consumer plus what consumers have not taken yet."""
        if self._hub is None:
            return None
        queue = self._hub.queues.get(name)
        if queue is None:
            return None
        waiting = len(queue.backlog) + sum(c.inbox.qsize() for c in queue.consumers)
        return QueueDepth(waiting, len(queue.consumers))

    async def subscribe_broadcast(self, channel: str, handler: MessageHandler) -> None:
        """A private queue bound to the fanout exchange ``channel``, as on AMQP."""
        private = f".msgflo-broadcast-{next(_ids)}"
        hub = self.hub
        hub.declare_queue(private)
        hub.declare_exchange(channel).add(private)
        self._broadcasts[channel] = private

        async def settle_after(message: Message) -> None:
            await handler(message)
            await self.ack_message(message)

        await self.subscribe_to_queue(private, settle_after)

    async def unsubscribe_broadcast(self, channel: str) -> None:
        private = self._broadcasts.pop(channel, None)
        if private is None:
            return
        await self.unsubscribe_from_queue(private)
        self.hub.exchanges.get(channel, set()).discard(private)
        self.hub.queues.pop(private, None)


class MemoryBroker(MemoryClient, Broker):
    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        self._bindings: list[Binding] = []

    async def add_binding(self, binding: Binding) -> None:
        if binding in self._bindings:
            return
        hub = self.hub
        if binding.type is BindingType.ROUNDROBIN and binding.deadletter:
            hub.declare_exchange(f"dead-{binding.tgt}").add(binding.deadletter)
            hub.declare_queue(binding.deadletter)
        if binding.src:
            hub.declare_exchange(binding.src).add(binding.tgt)
            hub.declare_queue(binding.tgt)
        self._bindings.append(binding)

    async def remove_binding(self, binding: Binding) -> None:
        if binding not in self._bindings:
            return
        self._bindings.remove(binding)
        hub = self.hub
        if binding.src and binding.src != binding.tgt:
            hub.exchanges.get(binding.src, set()).discard(binding.tgt)
        if binding.type is BindingType.ROUNDROBIN and binding.deadletter:
            hub.exchanges.get(f"dead-{binding.tgt}", set()).discard(binding.deadletter)

    async def list_bindings(self) -> list[Binding]:
        return list(self._bindings)

    async def subscribe_data(self, binding: Binding, handler: DataHandler) -> None:
        self.hub.observers[binding.src].append((binding, handler))

    async def unsubscribe_data(self, binding: Binding, handler: DataHandler) -> None:
        observers = self.hub.observers[binding.src]
        with contextlib.suppress(ValueError):
            observers.remove((binding, handler))

    async def subscribe_participant_change(self, handler: MessageHandler) -> None:
        await self.subscribe_broadcast(DISCOVERY_QUEUE, handler)
