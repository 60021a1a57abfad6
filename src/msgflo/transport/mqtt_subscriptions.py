"""What an MQTT client consumes and observes, and the filters it holds for that on the broker.

A topic can have a queue consumer (a participant's inport: a shared subscription
``$share/<group>/<topic>`` where the broker supports them) and an observer (bindings, data
subscriptions, discovery, broadcast channels: a plain subscription that sees every message).
A plain filter serves both, so one filter per topic is held on the broker.

Bounded memory: deliveries wait in memory for their handler; past :data:`HIGH_WATER` bytes the
link stops reading its socket (the broker then meets TCP back-pressure) and resumes below
:data:`LOW_WATER`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable

import aiomqtt

from msgflo.transport.mqtt_link import Link
from msgflo.transport.reconnect import cause

log = logging.getLogger("msgflo.transport.mqtt")
"""One logger for the whole transport, whichever of its modules speaks."""

HIGH_WATER = 4 * 1024 * 1024
"""Bytes of deliveries waiting for their handlers at which a client stops reading its socket."""
LOW_WATER = 1024 * 1024
"""...and at which it reads again."""

BodyHandler = Callable[[str, bytes], Awaitable[None]]


class Consumer:
    """Runs one subscription's handler on its deliveries, one at a time and in order.

    Deliveries are queued here as they are read; one task per subscription (not per message)
    drains the queue, so a slow handler delays only its own subscription.  ``taken(size)`` is
    told of every body taken off the queue (for the client's high-water mark).
    """

    def __init__(self, topic: str, handle: BodyHandler, taken: Callable[[int], None]) -> None:
        self.topic = topic
        self._handle = handle
        self._taken = taken
        self._items: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def waiting(self) -> int:
        return len(self._items)

    def push(self, body: bytes) -> None:
        self._items.append(body)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        items = self._items
        while True:
            while items:
                body = items.popleft()
                self._taken(len(body))
                try:
                    await self._handle(self.topic, body)
                except Exception:
                    log.exception("handler for MQTT topic %r failed", self.topic)
            self._waiter = loop.create_future()
            await self._waiter
            self._waiter = None

    async def stop(self) -> None:
        self._taken(sum(map(len, self._items)))
        self._items.clear()
        self._task.cancel()
        if self._task is asyncio.current_task():
            return  # a handler unsubscribing its own subscription ends with this delivery
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class Route:
    """Everything this client does with one topic, and the filter it holds on the broker."""

    __slots__ = ("filter", "group", "observer", "queue", "topic")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.queue: Consumer | None = None
        self.observer: Consumer | None = None
        self.filter: str | None = None
        self.group: str | None = None

    def push(self, body: bytes) -> int:
        """Queue ``body`` for this topic's consumers; how many bytes are now held."""
        held = 0
        if self.queue is not None:
            self.queue.push(body)
            held += len(body)
        if self.observer is not None:
            self.observer.push(body)
            held += len(body)
        return held


class Subscriptions:
    """The client's routes, the broker-side filters that feed them, and their backlog.

    The client points :attr:`link` at each link as it opens it (:meth:`use`); filters change
    on the broker only while ``connected()`` says so, and a new session subscribes
    :meth:`filters` again.  ``shared`` is ``None`` until the broker has been asked
    (:meth:`_probe`), which needs ``publish`` (a send on the link, ``False`` when down).
    """

    def __init__(
        self,
        *,
        qos: int,
        group: str,
        shared: bool | None,
        timeout: float,
        connected: Callable[[], bool],
        publish: Callable[[str, bytes, int], bool],
    ) -> None:
        self.link: Link | None = None
        self.routes: dict[str, Route] = {}
        self.held = 0
        """Bytes of deliveries waiting for their handlers (bounded near :data:`HIGH_WATER`)."""
        self._paused = False
        self._qos = qos
        self._group = group
        self._shared = shared
        self._timeout = timeout
        self._connected = connected
        self._publish = publish

    def use(self, link: Link | None) -> None:
        """Read from ``link`` from now on (paused, if the backlog is still high)."""
        self.link = link
        if link is not None and self._paused:
            link.pause_reading()

    def filters(self) -> list[tuple[str, int]]:
        """The filters a new session subscribes to restore every route."""
        return [(r.filter, self._qos) for r in self.routes.values() if r.filter]

    def waiting(self, topic: str) -> int:
        """Deliveries on ``topic`` read but not yet taken by its queue consumer."""
        route = self.routes.get(topic)
        return route.queue.waiting if route is not None and route.queue is not None else 0

    def deliver(self, topic: str, body: bytes) -> None:
        """A link read ``body`` on ``topic``."""
        route = self.routes.get(topic)
        if route is None:
            return
        self.held += route.push(body)
        if self.held >= HIGH_WATER and not self._paused:
            self._paused = True
            log.debug("%d bytes wait for handlers: reading paused", self.held)
            if self.link is not None:
                self.link.pause_reading()

    def _taken(self, size: int) -> None:
        self.held -= size
        if self._paused and self.held <= LOW_WATER:
            self._paused = False
            if self.link is not None:
                self.link.resume_reading()

    async def consume(self, topic: str, handle: BodyHandler, group: str | None) -> None:
        """Hand ``topic``'s messages to ``handle``, sharing them with the other consumers in
        ``group`` (the client's group when ``None``) where the broker shares subscriptions."""
        route = self._route(topic)
        route.group = group
        if route.queue is not None:
            await route.queue.stop()
        if self._shared is None and self._connected():
            self._shared = await self._probe()
        route.queue = Consumer(topic, handle, self._taken)
        await self._sync(route)

    async def stop_consuming(self, topic: str) -> None:
        route = self.routes.get(topic)
        if route is None or route.queue is None:
            return
        consumer, route.queue = route.queue, None
        await consumer.stop()
        await self._sync(route)

    async def observe(self, topic: str, handle: BodyHandler | None) -> None:
        """Hand every message on ``topic`` to ``handle``; ``None`` stops observing it."""
        route = self._route(topic) if handle is not None else self.routes.get(topic)
        if route is None or (route.observer is None) == (handle is None):
            return
        if route.observer is not None:
            await route.observer.stop()
            route.observer = None
        if handle is not None:
            route.observer = Consumer(topic, handle, self._taken)
        await self._sync(route)

    async def close(self) -> None:
        """Stop every consumer and forget every route (the client has closed)."""
        for route in self.routes.values():
            for consumer in (route.queue, route.observer):
                if consumer is not None:
                    await consumer.stop()
        self.routes.clear()
        self.held, self._paused = 0, False

    def _route(self, topic: str) -> Route:
        route = self.routes.get(topic)
        if route is None:
            route = self.routes[topic] = Route(topic)
        return route

    def _filter_for(self, route: Route) -> str | None:
        if route.observer is not None:
            return route.topic
        if route.queue is not None:
            shared = f"$share/{route.group or self._group}/{route.topic}"
            return shared if self._shared else route.topic
        return None

    async def _sync(self, route: Route) -> None:
        """Make the broker-side subscription match what the route needs now."""
        wanted = self._filter_for(route)
        old, route.filter = route.filter, wanted
        if wanted is None:
            self.routes.pop(route.topic, None)
        session = self.link.session if self.link is not None else None
        if wanted == old or session is None or not self._connected():
            return
        try:
            if wanted is not None:
                await session.subscribe(wanted, self._qos)
            if old is not None:
                await session.unsubscribe(old)
        except aiomqtt.MqttError as exc:
            # The connection dropped meanwhile; the next session subscribes route.filter.
            log.info("subscription change on %r deferred: %s", route.topic, cause(exc))

    async def _probe(self) -> bool:
        """Ask the broker whether it delivers to ``$share/`` subscriptions (amqtt does not).

        A shared and a plain subscription on two fresh topics, one message to each, in that
        order: a broker that supports shared subscriptions delivers the first before the second.
        """
        base = f"msgflo-probe/{uuid.uuid4().hex}"
        shared, plain = f"{base}/shared", f"{base}/plain"
        loop = asyncio.get_running_loop()
        arrived = {shared: loop.create_future(), plain: loop.create_future()}

        async def note(topic: str, _body: bytes) -> None:
            if not arrived[topic].done():
                arrived[topic].set_result(None)

        assert self.link is not None
        session = self.link.session
        routes = [self._route(shared), self._route(plain)]
        for route in routes:
            route.observer = Consumer(route.topic, note, self._taken)
        try:
            await session.subscribe([(f"$share/{self._group}/{shared}", 0), (plain, 0)])
            self._publish(shared, b"probe", 0)
            self._publish(plain, b"probe", 0)
            await asyncio.wait_for(arrived[plain], self._timeout)
            supported = arrived[shared].done()
            await session.unsubscribe([f"$share/{self._group}/{shared}", plain])
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.info("could not tell whether the broker shares subscriptions: %s", cause(exc))
            supported = False
        finally:
            for route in routes:
                assert route.observer is not None
                await route.observer.stop()
                self.routes.pop(route.topic, None)
        log.debug("broker shared subscriptions: %s", "yes" if supported else "no")
        return supported
