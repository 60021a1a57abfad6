"""MQTT transport: topics are queues, the broker side routes in-process (the original's Binder).

Wire behaviour follows msgflo-nodejs: a queue name is the topic, nothing is declared on the
broker, bodies are published with QoS 0 and retain false (QoS is selectable with ``?qos=``),
ack/nack are no-ops on the wire, discovery goes to topic ``fbp``.

URL: ``mqtt[s]://user:pass@host:port?qos=1&clientId=X&keepalive=60&shared=1&group=msgflo&fastpath=0``
(``mqtts`` defaults to port 8883; its CA and client certificate: :mod:`msgflo.transport.tls`).
``&version=5`` speaks MQTT 5 instead of 3.1.1, which carries dead-letter reasons as user
properties (:mod:`msgflo.transport.mqtt5`).

The per-message paths run on :mod:`msgflo.transport._paho` (the fast path) when its check
passes, and on :class:`PublicLink` (aiomqtt's public API only) when it does not or with
``?fastpath=0``.  aiomqtt does not reconnect: :class:`MqttClient` runs that loop
(:func:`msgflo.transport.reconnect.supervise`).

QoS 1 and 2 survive a cut: a client keeps one client id for its whole life (``clientId`` or a
generated one) and asks for a persistent session, so the broker keeps its subscriptions and the
messages sent to them while it is away; publishes the broker had not acknowledged are sent
again after the reconnection.  A generated id's session is ended on :meth:`MqttClient.disconnect`.

Bounded memory: deliveries wait in memory for their handler; past :data:`HIGH_WATER` bytes the
client stops reading its socket (the broker then meets TCP back-pressure) and resumes below
:data:`LOW_WATER`.

Competing consumers: :meth:`MqttClient.subscribe_to_queue` uses a shared subscription
``$share/<group>/<topic>`` so that clients consuming one queue split its messages as AMQP
consumers do (Mosquitto supports this).  amqtt, the embedded broker, accepts a ``$share``
subscription but never delivers anything to it, so by default the client asks the broker once
(:meth:`MqttClient._probe_shared_subscriptions`) and falls back to plain subscriptions, where
every consumer sees every message as in the original.  ``?shared=1`` / ``?shared=0`` skip the
probe.  Observers (bindings, data subscriptions, discovery) always see every message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import aiomqtt
import orjson
import paho.mqtt.client as paho

from msgflo.transport import _paho, mqtt5
from msgflo.transport._adapter import FastPath
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
    QueueKind,
    TransportError,
    decode,
    encode,
)
from msgflo.transport.reason import unwrap, wrap
from msgflo.transport.reconnect import cause, connect_error, supervise
from msgflo.transport.tls import client_context

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
OUTBOX_LIMIT = 10_000
"""Sends kept while the connection is down; further sends wait for the reconnection."""
HIGH_WATER = 4 * 1024 * 1024
"""Bytes of deliveries waiting for their handlers at which a client stops reading its socket."""
LOW_WATER = 1024 * 1024
"""...and at which it reads again."""
FLUSH_POLL = 0.005
BINDINGS_TOPIC = "msgflo/bindings"
"""Each binder's retained record of its bindings is ``msgflo/bindings/<its client id>``."""

BodyHandler = Callable[[str, bytes], Awaitable[None]]


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
        # aiomqtt warns once per call beyond this many in flight; a relay has hundreds.
        session.pending_calls_threshold = OUTBOX_LIMIT
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


class _Consumer:
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


class _Route:
    """Everything this client does with one topic, and the filter it holds on the broker."""

    __slots__ = ("filter", "group", "observer", "queue", "topic")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.queue: _Consumer | None = None
        self.observer: _Consumer | None = None
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


class MqttClient(Client):
    """A participant's or a tool's MQTT connection (see the module docstring)."""

    scheme = "mqtt"

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        if address.scheme not in DEFAULT_PORTS:
            raise TransportError(f"{address.redacted()}: not an mqtt:// or mqtts:// URL")
        self._qos = address.int_option("qos", 0)
        if self._qos not in (0, 1, 2):
            raise TransportError(f"{address.redacted()}: qos must be 0, 1 or 2")
        self._shared: bool | None = None
        if "shared" in address.options:
            self._shared = address.int_option("shared", 0) != 0
        self._group = address.options.get("group", "msgflo")
        # One id for the client's whole life: the broker keeps a session (subscriptions and the
        # QoS>=1 messages sent to them during a cut) only for a client id it sees again.
        given = address.options.get("clientId")
        self._client_id = given or f"msgflo-{uuid.uuid4().hex[:16]}"
        self._keepalive = address.int_option("keepalive", 60)
        self._v5 = mqtt5.wanted(address)
        self._clean_session = address.int_option("clean", 0 if self._qos > 0 else 1) != 0
        self._end_session = given is None and not self._clean_session
        self._tls = client_context(address)
        self._fastpath = FastPath(address.options, "MQTT")
        self._routes: dict[str, _Route] = {}
        self._queues: dict[str, QueueKind] = {}
        self._link: Link | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = True
        self._online = asyncio.Event()
        self._offline = asyncio.Event()
        self._outbox: deque[tuple[str, bytes, int]] = deque()
        self._unacked: deque[tuple[str, bytes, int, Sent]] = deque()
        self._last_sent: Sent | None = None
        self._held = 0
        self._paused = False
        self._will: aiomqtt.Will | None = None

    # connection -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._online.is_set() and not self._closed

    @property
    def buffered(self) -> int:
        """Bytes of deliveries waiting for their handlers (bounded near :data:`HIGH_WATER`)."""
        return self._held

    def held(self, name: str) -> int | None:
        """An MQTT broker keeps no queue for us: deliveries read but not yet handled are the
        backlog of a topic."""
        route = self._routes.get(name)
        return route.queue.waiting if route is not None and route.queue is not None else 0

    @property
    def client_id(self) -> str:
        """The MQTT client id, the same on every connection of this client."""
        return self._client_id

    @property
    def fastpath(self) -> bool:
        """Whether the per-message paths run on :mod:`msgflo.transport._paho`."""
        return self._fastpath.on

    @property
    def _session(self) -> aiomqtt.Client | None:
        return self._link.session if self._link is not None else None

    async def wait_disconnected(self) -> None:
        """Return once the connection is known to be lost (for health checks and tests)."""
        await self._offline.wait()

    async def connect(self) -> None:
        if not self._closed:
            return
        try:
            await asyncio.wait_for(self._open(self.connect_timeout), self.connect_timeout)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            raise connect_error(self, exc, mqtt5.refusal(exc) if self._v5 else None) from exc
        self._closed = False
        self._set_online()
        self._supervisor = asyncio.get_running_loop().create_task(
            supervise(self, lost=self._lost, reopen=self._reopen)
        )

    def _new_session(self, timeout: float, *, clean: bool) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.address.host or "127.0.0.1",
            self.address.port or DEFAULT_PORTS[self.address.scheme],
            username=self.address.username,
            password=self.address.password,
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if self._v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if self._v5 else clean,
            clean_start=clean if self._v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=mqtt5.session_properties(clean) if self._v5 else None,
            keepalive=self._keepalive,
            tls_context=self._tls,
            timeout=timeout,
            will=self._will,
        )

    async def _open(self, timeout: float) -> None:
        """Connect a fresh session and restore every subscription on it."""
        session = self._new_session(timeout, clean=self._clean_session)
        link: Link = (
            _paho.FastLink(session, self._deliver, timeout)
            if self._fastpath.check(lambda: _paho.unavailable(session))
            else PublicLink(session, self._deliver)
        )
        try:
            await session.__aenter__()
            filters = [(r.filter, self._qos) for r in self._routes.values() if r.filter]
            if filters:
                await session.subscribe(filters)
        except BaseException:
            link.abandon()
            raise
        link.start()
        self._link = link
        if self._paused:
            link.pause_reading()

    def _deliver(self, topic: str, body: bytes) -> None:
        route = self._routes.get(topic)
        if route is None:
            return
        self._held += route.push(body)
        if self._held >= HIGH_WATER and not self._paused:
            self._paused = True
            log.debug("%d bytes wait for handlers: reading paused", self._held)
            if self._link is not None:
                self._link.pause_reading()

    def _taken(self, size: int) -> None:
        self._held -= size
        if self._paused and self._held <= LOW_WATER:
            self._paused = False
            if self._link is not None:
                self._link.resume_reading()

    def _set_online(self) -> None:
        self._offline.clear()
        self._online.set()

    async def _lost(self) -> BaseException | None:
        link = self._link
        assert link is not None
        why = await link.lost()
        self._online.clear()
        self._offline.set()
        # What the broker had not acknowledged goes out again first, then what was waiting.
        again = [(t, b, q) for t, b, q, sent in self._unacked if not sent.done()]
        again += [(t, b, 0) for t, b in link.take_unsent()]
        self._unacked.clear()
        self._outbox.extendleft(reversed(again))
        self._last_sent = None
        self._session_lost()
        return why

    async def _reopen(self) -> None:
        await asyncio.wait_for(self._open(min(self.connect_timeout, 5.0)), 10.0)
        while self._outbox and self._publish(*self._outbox[0]):
            self._outbox.popleft()
        self._set_online()

    def _session_lost(self) -> None:
        """Hook for state that belongs to one session only."""

    async def disconnect(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        link, self._link = self._link, None
        self._online.clear()
        self._offline.set()
        self._online.set()  # wake senders waiting for room in the outbox; they see _closed
        if link is not None:
            await link.close()
            if self._end_session:
                await self._end_persistent_session()
        for route in self._routes.values():
            for consumer in (route.queue, route.observer):
                if consumer is not None:
                    await consumer.stop()
        self._routes.clear()
        self._outbox.clear()
        self._unacked.clear()
        self._held, self._paused = 0, False

    async def _end_persistent_session(self) -> None:
        """A generated id is never used again: tell the broker to drop its session, or it
        would keep queueing messages for it."""
        session = self._new_session(min(self.connect_timeout, 5.0), clean=True)
        try:
            await asyncio.wait_for(session.__aenter__(), min(self.connect_timeout, 5.0))
            await session.__aexit__(None, None, None)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            log.info("could not end the MQTT session of %s: %s", self._client_id, cause(exc))

    # publishing ---------------------------------------------------------------------------

    def _publish(self, topic: str, body: bytes, qos: int) -> bool:
        link = self._link
        if link is None:
            return False
        sent = link.publish(topic, body, qos)  # None when its connection is down
        if sent is None:
            return False
        self._last_sent = sent
        if qos:
            unacked = self._unacked
            while unacked and unacked[0][3].done():
                unacked.popleft()
            unacked.append((topic, body, qos, sent))
        return True

    async def _send(self, topic: str, body: bytes, qos: int) -> None:
        """Publish now, or keep it (in order) until the connection is back."""
        if not self._outbox and self._publish(topic, body, qos):
            return
        while True:
            if self._closed:
                raise TransportError(f"{self.address.redacted()}: not connected")
            if len(self._outbox) < OUTBOX_LIMIT:
                self._outbox.append((topic, body, qos))
                return
            await self._online.wait()

    async def send_raw(self, kind: QueueKind, name: str, body: bytes) -> None:
        await self._send(name, body, self._qos)

    async def send_discovery(self, body: bytes) -> None:
        await self._send(DISCOVERY_QUEUE, body, 0)

    async def flush(self) -> None:
        """Wait until the last send is written out (QoS 0) or acknowledged (QoS 1 and 2).

        The broker acknowledges in publish order, so the last send stands for all of them.
        """
        if self._link is not None:
            self._link.write_pending()
        while not self._closed:
            await self._online.wait()
            sent = self._last_sent
            if self._closed or (sent is None and not self._outbox) or (sent and sent.done()):
                return
            await asyncio.sleep(FLUSH_POLL)

    # queues and subscriptions ---------------------------------------------------------------

    async def create_queue(self, kind: QueueKind, name: str, *, persistent: bool = True) -> None:
        self._queues[name] = kind

    async def remove_queue(self, kind: QueueKind, name: str) -> None:
        self._queues.pop(name, None)

    def _filter_for(self, route: _Route) -> str | None:
        if route.observer is not None:
            return route.topic
        if route.queue is not None:
            shared = f"$share/{route.group or self._group}/{route.topic}"
            return shared if self._shared else route.topic
        return None

    async def _sync(self, route: _Route) -> None:
        """Make the broker-side subscription match what the route needs now."""
        wanted = self._filter_for(route)
        old, route.filter = route.filter, wanted
        if wanted is None:
            self._routes.pop(route.topic, None)
        session = self._session
        if wanted == old or session is None or not self.connected:
            return
        try:
            if wanted is not None:
                await session.subscribe(wanted, self._qos)
            if old is not None:
                await session.unsubscribe(old)
        except aiomqtt.MqttError as exc:
            # The connection dropped meanwhile; the next session subscribes route.filter.
            log.info("subscription change on %r deferred: %s", route.topic, cause(exc))

    def _route(self, topic: str) -> _Route:
        route = self._routes.get(topic)
        if route is None:
            route = self._routes[topic] = _Route(topic)
        return route

    supports_attach = True

    async def subscribe_to_queue(self, name: str, handler: MessageHandler) -> None:
        await self._consume(name, handler, None)

    async def attach(self, source: str, handler: MessageHandler, *, group: str) -> None:
        await self._consume(source, handler, group)

    async def detach(self, source: str) -> None:
        await self.unsubscribe_from_queue(source)

    async def _consume(self, name: str, handler: MessageHandler, group: str | None) -> None:
        route = self._route(name)
        route.group = group
        if route.queue is not None:
            await route.queue.stop()

        async def deliver(topic: str, body: bytes) -> None:
            # The token marks a delivery (which a participant settles on the broker) apart
            # from data handed to it directly; MQTT has no handle of its own to put there.
            message = mqtt5.message_from(topic, body, token=topic)
            try:
                await handler(message)
            except Exception:
                log.exception("handler for queue %r failed", topic)
                if not message.settled:
                    await self.nack_message(message)

        if self._shared is None and self.connected:
            self._shared = await self._probe_shared_subscriptions()
        route.queue = _Consumer(name, deliver, self._taken)
        await self._sync(route)

    async def _probe_shared_subscriptions(self) -> bool:
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

        session = self._session
        assert session is not None
        routes = [self._route(shared), self._route(plain)]
        for route in routes:
            route.observer = _Consumer(route.topic, note, self._taken)
        try:
            await session.subscribe([(f"$share/{self._group}/{shared}", 0), (plain, 0)])
            self._publish(shared, b"probe", 0)
            self._publish(plain, b"probe", 0)
            await asyncio.wait_for(arrived[plain], self.connect_timeout)
            supported = arrived[shared].done()
            await session.unsubscribe([f"$share/{self._group}/{shared}", plain])
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.info("could not tell whether the broker shares subscriptions: %s", cause(exc))
            supported = False
        finally:
            for route in routes:
                assert route.observer is not None
                await route.observer.stop()
                self._routes.pop(route.topic, None)
        log.debug("broker shared subscriptions: %s", "yes" if supported else "no")
        return supported

    async def unsubscribe_from_queue(self, name: str) -> None:
        route = self._routes.get(name)
        if route is None or route.queue is None:
            return
        consumer, route.queue = route.queue, None
        await consumer.stop()
        await self._sync(route)

    async def subscribe_broadcast(self, channel: str, handler: MessageHandler) -> None:
        """A plain (never shared) subscription: every subscriber gets every message."""

        async def deliver(topic: str, body: bytes) -> None:
            await handler(Message.from_body(topic, mqtt5.plain(body)))

        await self._set_observer(channel, deliver)

    async def unsubscribe_broadcast(self, channel: str) -> None:
        await self._set_observer(channel, None)

    async def _set_observer(self, topic: str, handle: BodyHandler | None) -> None:
        route = self._route(topic) if handle is not None else self._routes.get(topic)
        if route is None or (route.observer is None) == (handle is None):
            return
        if route.observer is not None:
            await route.observer.stop()
            route.observer = None
        if handle is not None:
            route.observer = _Consumer(topic, handle, self._taken)
        await self._sync(route)

    async def ack_message(self, message: Message) -> None:
        """Marks the message settled; MQTT has nothing to acknowledge after delivery."""
        if not message.settled:
            message.acked = True

    async def nack_message(
        self,
        message: Message,
        *,
        requeue: bool = False,
        reason: Mapping[str, Any] | None = None,
    ) -> None:
        """MQTT cannot reject a delivered message: the client publishes it to the topic
        ``dead-<queue>`` itself, with ``reason`` in an envelope (:func:`reason.wrap`), or as
        user properties in MQTT 5 mode (:func:`mqtt5.dead_letter`).  A
        broker drops a publish nobody subscribes to, so each dead letter is logged here.
        ``requeue`` only marks the message settled: MQTT cannot take a message back."""
        if message.settled:
            return
        message.nacked = True
        if requeue:
            return
        dead = f"dead-{message.queue}"
        if reason is None:
            body = message.body
        else:
            body = (
                mqtt5.dead_letter(message.body, reason) if self._v5 else wrap(message.body, reason)
            )
        log.warning(
            "dead letter of %r published to topic %r (the broker drops it unless a DEAD_ edge "
            "or a subscriber takes it)",
            message.queue,
            dead,
        )
        await self._send(dead, body, self._qos)


def _binding(entry: dict[str, str]) -> Binding:
    deadletter = entry.get("deadletter")
    return Binding(
        src=str(entry.get("src", "")),
        tgt=str(entry["tgt"]),
        type=BindingType(entry.get("type", "pubsub")),
        deadletter=str(deadletter) if deadletter else None,
    )


class MqttBroker(MqttClient, Broker):
    """Bindings are forwarded by this process, as the original's Binder did.

    For each binding source topic the broker holds a plain subscription and republishes every
    body, byte for byte, to every topic reachable from it through bindings.  Sending each
    reachable topic one copy straight away (instead of letting copies come back and hop on)
    is what makes chains work and cycles terminate: a copy this broker published is recognised
    when it comes back and is not forwarded again.  Round-robin bindings forward like pubsub
    bindings (MQTT has no broker-side queue to share).  A ``deadletter`` forwards the topic
    ``dead-<tgt>``, where participants publish what they fail, to the deadletter queue's topic.
    Bindings live in this process only, as in the original; the coordinator publishes them
    (:meth:`announce_bindings`) so that other processes can see them.
    """

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        self._bindings: dict[tuple[str, str], Binding] = {}
        self._made: list[Binding] = []
        self._data: dict[str, list[tuple[Binding, DataHandler]]] = {}
        self._participant_handlers: list[MessageHandler] = []
        self._targets: dict[str, tuple[str, ...]] = {}
        self._echoes: dict[str, Counter[bytes]] = {}
        self._record_topic = f"{BINDINGS_TOPIC}/{self.client_id}"
        self._record = b""
        # A binder that dies without a word takes its record with it.
        self._will = aiomqtt.Will(self._record_topic, b"", qos=1, retain=True)

    async def _reopen(self) -> None:
        await super()._reopen()
        if self._record:  # the broker sent our will when the connection dropped
            await self._keep(self._record)

    async def disconnect(self) -> None:
        if self._record and self.connected:
            self._record = b""
            await self._keep(b"")
        await super().disconnect()

    async def _keep(self, body: bytes) -> None:
        """Publish the record and wait (bounded) until the broker has it."""
        link = self._link
        sent = link.publish(self._record_topic, body, 1, retain=True) if link else None
        if sent is None:
            return  # published again by _reopen
        for _ in range(int(min(self.connect_timeout, 5.0) / FLUSH_POLL)):
            if sent.done():
                return
            await asyncio.sleep(FLUSH_POLL)
        log.info("binding record on %r not confirmed in time", self._record_topic)

    async def announce_bindings(self, bindings: Sequence[Binding]) -> None:
        """The retained record ``msgflo/bindings/<client id>``, cleared on disconnect and, by
        the connection's last will, when this process dies."""
        body = (
            encode({"binder": self.client_id, "bindings": [b.to_json() for b in bindings]})
            if bindings
            else b""
        )
        if body != self._record:
            self._record = body
            await self._keep(body)

    async def broker_bindings(self) -> list[Binding]:
        """Every binder's record, read on a short-lived connection of its own."""
        found: dict[Binding, None] = {}
        for topic, body in (await self._read_records()).items():
            try:
                raw = orjson.loads(body)
                found.update(dict.fromkeys(_binding(entry) for entry in raw["bindings"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise TransportError(f"binding record {topic!r} is not valid: {exc}") from None
        return list(found)

    async def _read_records(self) -> dict[str, bytes]:
        """Retained records come right after the subscription; a marker published after a
        second subscription arrives once they all have."""
        marker = f"msgflo-probe/{uuid.uuid4().hex}"
        session = aiomqtt.Client(
            self.address.host or "127.0.0.1",
            self.address.port or DEFAULT_PORTS[self.address.scheme],
            username=self.address.username,
            password=self.address.password,
            identifier=f"msgflo-read-{uuid.uuid4().hex[:16]}",
            clean_session=True,
            tls_context=self._tls,
            timeout=self.connect_timeout,
        )
        records: dict[str, bytes] = {}
        try:
            async with asyncio.timeout(self.connect_timeout), session:
                await session.subscribe(f"{BINDINGS_TOPIC}/+", qos=1)
                await session.subscribe(marker, qos=1)
                await session.publish(marker, b"", qos=1)
                async for message in session.messages:
                    topic = message.topic.value
                    if topic == marker:
                        break
                    if isinstance(message.payload, bytes) and message.payload:
                        records[topic] = message.payload
                    else:
                        records.pop(topic, None)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            raise TransportError(
                f"{self.address.redacted()}: cannot read the binding records: {cause(exc)}"
            ) from None
        return records

    def _session_lost(self) -> None:
        # Copies published on the lost session may never come back.
        self._echoes.clear()

    def _reachable(self, src: str) -> tuple[str, ...]:
        targets = self._targets.get(src)
        if targets is None:
            seen = {src}
            order: list[str] = []
            pending = [src]
            while pending:
                topic = pending.pop(0)
                for s, t in self._bindings:
                    if s == topic and t not in seen:
                        seen.add(t)
                        order.append(t)
                        pending.append(t)
            targets = self._targets[src] = tuple(order)
        return targets

    def _is_echo(self, topic: str, body: bytes) -> bool:
        echoes = self._echoes.get(topic)
        if not echoes or not echoes[body]:
            return False
        echoes[body] -= 1
        if not echoes[body]:
            del echoes[body]
        return True

    async def _observe(self, topic: str, body: bytes) -> None:
        if not self._is_echo(topic, body):
            for target in self._reachable(topic):
                if target in self._routes and self._routes[target].observer is not None:
                    self._echoes.setdefault(target, Counter())[body] += 1
                await self._send(target, body, self._qos)
        subscribers = self._data.get(topic)
        if subscribers:
            data = decode(unwrap(mqtt5.plain(body))[0])
            for binding, handler in list(subscribers):
                try:
                    await handler(binding, data)
                except Exception:
                    log.exception("data handler for %s failed", binding.src)
        if topic == DISCOVERY_QUEUE:
            for participant_handler in list(self._participant_handlers):
                try:
                    await participant_handler(Message.from_body(topic, mqtt5.plain(body)))
                except Exception:
                    log.exception("participant-change handler failed")

    async def _refresh_observer(self, topic: str) -> None:
        needed = (
            any(s == topic for s, _ in self._bindings)
            or bool(self._data.get(topic))
            or (topic == DISCOVERY_QUEUE and bool(self._participant_handlers))
        )
        await self._set_observer(topic, self._observe if needed else None)

    @staticmethod
    def _forwards(binding: Binding) -> list[tuple[str, str]]:
        """The topic pairs a binding forwards: its edge, and its dead letters."""
        pairs = [(binding.src, binding.tgt)] if binding.src else []
        if binding.deadletter and binding.tgt:
            pairs.append((f"dead-{binding.tgt}", binding.deadletter))
        return pairs

    async def add_binding(self, binding: Binding) -> None:
        if binding in self._made:
            return
        self._made.append(binding)
        for src, tgt in self._forwards(binding):
            self._bindings[(src, tgt)] = binding
            self._targets.clear()
            await self._refresh_observer(src)

    async def remove_binding(self, binding: Binding) -> None:
        if binding not in self._made:
            return
        self._made.remove(binding)
        for src, tgt in self._forwards(binding):
            self._bindings.pop((src, tgt), None)
            self._targets.clear()
            await self._refresh_observer(src)

    async def list_bindings(self) -> list[Binding]:
        return list(self._made)

    async def subscribe_data(self, binding: Binding, handler: DataHandler) -> None:
        self._data.setdefault(binding.src, []).append((binding, handler))
        await self._refresh_observer(binding.src)

    async def unsubscribe_data(self, binding: Binding, handler: DataHandler) -> None:
        subscribers = self._data.get(binding.src, [])
        self._data[binding.src] = [
            (b, h) for b, h in subscribers if not (b == binding and h == handler)
        ]
        await self._refresh_observer(binding.src)

    async def subscribe_participant_change(self, handler: MessageHandler) -> None:
        self._participant_handlers.append(handler)
        await self._refresh_observer(DISCOVERY_QUEUE)
