"""MQTT transport: topics are queues, the broker side routes in-process (the original's Binder).

Wire behaviour follows msgflo-nodejs (docs/transports.md): a queue name is the
topic, nothing is declared on the broker, bodies are published with QoS 0 and retain false (QoS
is selectable with ``?qos=``), ack/nack are no-ops on the wire, discovery goes to topic ``fbp``.

URL: ``mqtt[s]://user:pass@host:port?qos=1&clientId=X&keepalive=60&shared=1&group=msgflo``
(``mqtts`` defaults to port 8883; its CA and client certificate: :mod:`msgflo.transport.tls`).

aiomqtt owns the connection (CONNACK, SUBACK, keepalive).  The per-message paths bypass it and
most of paho, because paho costs about three ``recv`` calls, a callback-matcher pass and a lock
per received message and one ``send`` plus a writer (un)registration per publish, which was
half of a relay's CPU:

- the socket is read in chunks of :data:`READ_SIZE`; QoS 0 PUBLISH packets (MQTT 3.1.1) are
  cut out of the buffer and handed to their route here, and every other packet (CONNACK,
  SUBACK, PINGRESP, QoS 1/2 publishes...) is fed, whole, to paho, which reads it from the same
  buffer, so paho's state machine still sees everything it needs;
- QoS 0 publishes of one event-loop turn are encoded here and handed to paho's writer as one
  packet: one ``send`` per turn.

aiomqtt does not reconnect: :class:`MqttClient` runs that loop.

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
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from msgflo.transport.base import (
    DISCOVERY_QUEUE,
    Address,
    Binding,
    Broker,
    Client,
    DataHandler,
    Message,
    MessageHandler,
    QueueKind,
    TransportError,
    decode,
)
from msgflo.transport.tls import client_context, verification_failure

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
BACKOFF_START = 0.2
BACKOFF_CAP = 5.0
OUTBOX_LIMIT = 10_000
"""Sends kept while the connection is down; further sends wait for the reconnection."""

FLUSH_POLL = 0.005
READ_SIZE = 65536
_PUBLISH_QOS0 = 0x30

BodyHandler = Callable[[str, bytes], Awaitable[None]]


def _remaining_length(size: int) -> bytes:
    """MQTT's variable-length integer."""
    out = bytearray()
    while True:
        size, digit = size >> 7, size & 0x7F
        out.append(digit | 0x80 if size else digit)
        if not size:
            return bytes(out)


def _cause(exc: BaseException) -> str:
    """One readable line from whatever paho, aiomqtt or the OS raised."""
    if isinstance(exc, TimeoutError):
        return "no answer from the broker"
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip() or type(exc).__name__
    return text[0].lower() + text[1:]


class _Consumer:
    """Runs one subscription's handler on its deliveries, one at a time and in order.

    Deliveries are queued here by the paho callback; one task per subscription (not per
    message) drains the queue, so a slow handler delays only its own subscription.
    """

    def __init__(self, topic: str, handle: BodyHandler) -> None:
        self.topic = topic
        self._handle = handle
        self._items: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._task = asyncio.get_running_loop().create_task(self._run())

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
                try:
                    await self._handle(self.topic, body)
                except Exception:
                    log.exception("handler for MQTT topic %r failed", self.topic)
            self._waiter = loop.create_future()
            await self._waiter
            self._waiter = None

    async def stop(self) -> None:
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

    def push(self, body: bytes) -> None:
        if self.queue is not None:
            self.queue.push(body)
        if self.observer is not None:
            self.observer.push(body)


class MqttClient(Client):
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
        self._client_id = address.options.get("clientId")
        self._keepalive = address.int_option("keepalive", 60)
        self._tls = client_context(address)
        # A broker keeps a session (subscriptions, QoS>=1 messages in flight) across a
        # reconnection only for a known client id; a random id would leave orphans behind.
        persistent = self._qos > 0 and self._client_id is not None
        self._clean_session = address.int_option("clean", 0 if persistent else 1) != 0
        self._routes: dict[str, _Route] = {}
        self._queues: dict[str, QueueKind] = {}
        self._session: aiomqtt.Client | None = None
        self._paho: paho.Client | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = True
        self._online = asyncio.Event()
        self._offline = asyncio.Event()
        self._outbox: deque[tuple[str, bytes, int]] = deque()
        self._last_sent: paho.MQTTMessageInfo | None = None
        self._fast = True
        self._pending: list[tuple[str, bytes]] = []
        self._write_scheduled = False
        self._topic_headers: dict[str, bytes] = {}

    # connection -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._online.is_set() and not self._closed

    async def wait_disconnected(self) -> None:
        """Return once the connection is known to be lost (for health checks and tests)."""
        await self._offline.wait()

    async def connect(self) -> None:
        if not self._closed:
            return
        try:
            await asyncio.wait_for(self._open(self.connect_timeout), self.connect_timeout)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            raise TransportError(
                f"cannot connect to {self.address.redacted()}: "
                f"{verification_failure(exc) or _cause(exc)}"
            ) from None
        self._closed = False
        self._set_online()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def _open(self, timeout: float) -> None:
        """Connect a fresh session and restore every subscription on it."""
        session = aiomqtt.Client(
            self.address.host or "127.0.0.1",
            self.address.port or DEFAULT_PORTS[self.address.scheme],
            username=self.address.username,
            password=self.address.password,
            identifier=self._client_id or f"msgflo-{uuid.uuid4().hex[:16]}",
            clean_session=self._clean_session,
            keepalive=self._keepalive,
            tls_context=self._tls,
            timeout=timeout,
        )
        client: paho.Client = session._client
        client.connect_timeout = timeout
        client.on_message = self._on_message
        client.on_disconnect = self._fail_fast(session, client.on_disconnect)
        client.disable_logger()  # its per-packet debug calls cost more than decoding a message
        # paho builds two objects per publish for this callback; flush() polls instead.
        client.on_publish = None
        try:
            await session.__aenter__()
            filters = [(r.filter, self._qos) for r in self._routes.values() if r.filter]
            if filters:
                await session.subscribe(filters)
        except BaseException:
            self._abandon(session)
            raise
        self._fast = client._protocol != paho.MQTTv5  # v5 publishes carry properties
        self._read_in_chunks(session)
        self._session, self._paho = session, client

    @staticmethod
    def _fail_fast(session: aiomqtt.Client, on_disconnect: Any) -> Any:
        """aiomqtt ignores a connection that closes before CONNACK and waits for its timeout
        (a broker that is still starting, a proxy that refuses): fail the attempt at once so
        the backoff, not the timeout, decides when to try again."""

        def wrapped(*args: Any) -> None:
            if not session._connected.done():
                session._connected.set_exception(
                    aiomqtt.MqttError("the connection closed before the broker answered")
                )
            on_disconnect(*args)

        return wrapped

    def _read_in_chunks(self, session: aiomqtt.Client) -> None:
        """Replace aiomqtt's socket reader by one that reads chunks and parses them here.

        paho reads a packet in three or more ``recv`` calls and aiomqtt reads one packet per
        event-loop iteration; one ``recv`` per chunk lets a consumer take a burst in one wake-up.
        paho's own ``recv`` is pointed at our buffer so that it reads the packets we leave to it.
        """
        client: paho.Client = session._client
        sock = client.socket()
        if sock is None:
            return
        loop = asyncio.get_running_loop()
        buf = bytearray()
        real_recv = client._sock_recv

        def recv(size: int) -> bytes:
            if not buf:  # only when an end of stream or an error is passed on to paho
                return real_recv(size)
            chunk = bytes(buf[:size])
            del buf[:size]
            return chunk

        client._sock_recv = recv  # type: ignore[method-assign,assignment]

        def readable() -> None:
            try:
                if client._in_packet["command"]:  # begun before we took over: paho ends it
                    client.loop_read()
                    if client._in_packet["command"]:
                        return
                while True:
                    try:
                        chunk = real_recv(READ_SIZE)
                    except BlockingIOError:
                        break
                    except OSError:
                        chunk = b""
                    if not chunk:  # paho meets the same end or error and reports the loss
                        client.loop_read()
                        return
                    buf.extend(chunk)
                    pending = getattr(sock, "pending", None)  # TLS keeps decrypted bytes
                    if len(chunk) < READ_SIZE and not (pending and pending()):
                        break
                self._take_packets(client, buf)
            except Exception as exc:
                if not session._disconnected.done():
                    session._disconnected.set_exception(exc)

        loop.remove_reader(sock.fileno())
        loop.add_reader(sock.fileno(), readable)

    def _take_packets(self, client: paho.Client, buf: bytearray) -> None:
        """Deliver the QoS 0 publishes at the front of ``buf``; hand anything else to paho."""
        routes, fast = self._routes, self._fast
        pos, end_of_data = 0, len(buf)
        while end_of_data - pos >= 2:
            first = buf[pos]
            length, shift, i, whole = 0, 0, pos + 1, False
            while i < end_of_data and shift < 28:
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    whole = True
                    break
            if not whole and shift < 28:
                break  # the length itself has not all arrived
            end = i + length
            if whole and end > end_of_data:
                break
            if whole and fast and first & 0xF6 == _PUBLISH_QOS0 and length >= 2:
                body_at = i + 2 + ((buf[i] << 8) | buf[i + 1])
                route = routes.get(buf[i + 2 : body_at].decode("utf-8", "replace"))
                if route is not None:
                    route.push(bytes(buf[body_at:end]))
                pos = end
                continue
            del buf[:pos]
            client.loop_read()  # reads exactly this packet (or a malformed length) via recv()
            pos, end_of_data = 0, len(buf)
            if client.socket() is None:
                buf.clear()
                return
        del buf[:pos]
        client._last_bytes_received = time.monotonic()

    @staticmethod
    def _abandon(session: aiomqtt.Client) -> None:
        """Drop a half-open session without waiting for the broker."""
        with contextlib.suppress(Exception):
            session._client._sock_close()
        if not session._disconnected.done():
            session._disconnected.set_result(None)

    def _set_online(self) -> None:
        self._offline.clear()
        self._online.set()

    def _set_offline(self) -> None:
        self._online.clear()
        self._offline.set()
        self._paho = None
        self._last_sent = None

    async def _supervise(self) -> None:
        """Wait for the session to drop, then reconnect with backoff until it works again."""
        while True:
            session = self._session
            assert session is not None
            await asyncio.wait([session._disconnected])
            cause = session._disconnected.exception()
            self._set_offline()
            self._session_lost()
            log.warning(
                "lost connection to %s (%s); reconnecting",
                self.address.redacted(),
                _cause(cause) if cause else "closed",
            )
            delay = BACKOFF_START
            while True:
                await asyncio.sleep(delay)
                try:
                    await asyncio.wait_for(self._open(min(self.connect_timeout, 5.0)), 10.0)
                    break
                except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
                    log.info("reconnect to %s failed: %s", self.address.redacted(), _cause(exc))
                    delay = min(delay * 2, BACKOFF_CAP)
            while self._outbox:
                self._publish(*self._outbox.popleft())
            self._set_online()
            log.info("reconnected to %s", self.address.redacted())
            try:
                await self._notify_reconnected()
            except Exception:
                log.exception("reconnect listener failed")

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
        session, self._session = self._session, None
        self._set_offline()
        self._online.set()  # wake senders waiting for room in the outbox; they see _closed
        if session is not None:
            try:
                await session.__aexit__(None, None, None)
            except aiomqtt.MqttError:
                self._abandon(session)
            if session._disconnected.done() and not session._disconnected.cancelled():
                session._disconnected.exception()  # retrieved, so asyncio does not warn
        for route in self._routes.values():
            for consumer in (route.queue, route.observer):
                if consumer is not None:
                    await consumer.stop()
        self._routes.clear()
        self._outbox.clear()

    # paho callbacks (run inside the event loop, from aiomqtt's socket reader/writer) -------

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        route = self._routes.get(msg.topic)
        if route is not None:
            route.push(bytes(msg.payload))

    # publishing ---------------------------------------------------------------------------

    def _publish(self, topic: str, body: bytes, qos: int) -> bool:
        client = self._paho
        if client is None or not client.is_connected():
            return False
        if qos == 0 and self._fast:
            self._pending.append((topic, body))
            if not self._write_scheduled:
                self._write_scheduled = True
                asyncio.get_running_loop().call_soon(self._write_pending)
            return True
        self._write_pending()  # keeps the order of everything sent
        info = client.publish(topic, body, qos)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return False
        self._last_sent = info
        return True

    def _write_pending(self) -> None:
        """Hand this turn's QoS 0 publishes to paho's writer as one packet (one ``send``)."""
        self._write_scheduled = False
        pending = self._pending
        if not pending:
            return
        self._pending = []
        client = self._paho
        if client is None or not client.is_connected():
            self._outbox.extendleft((topic, body, 0) for topic, body in reversed(pending))
            return
        headers, parts = self._topic_headers, list[bytes]()
        for topic, body in pending:
            header = headers.get(topic)
            if header is None:
                encoded = topic.encode()
                header = headers[topic] = len(encoded).to_bytes(2, "big") + encoded
            parts += (b"\x30", _remaining_length(len(header) + len(body)), header, body)
        data = b"".join(parts)
        info = paho.MQTTMessageInfo(0)
        client._out_packet.append(
            {
                "command": paho.PUBLISH,
                "mid": 0,
                "qos": 0,
                "pos": 0,
                "to_process": len(data),
                "packet": data,
                "info": info,
            }
        )
        client._last_msg_out = time.monotonic()
        client.loop_write()
        self._last_sent = info

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
        self._write_pending()
        while not self._closed:
            await self._online.wait()
            sent = self._last_sent
            if self._closed or sent is None or sent.is_published():
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
            log.info("subscription change on %r deferred: %s", route.topic, _cause(exc))

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
            message = Message.from_body(topic, body)
            try:
                await handler(message)
            except Exception:
                log.exception("handler for queue %r failed", topic)
                if not message.settled:
                    await self.nack_message(message)

        if self._shared is None and self.connected:
            self._shared = await self._probe_shared_subscriptions()
        route.queue = _Consumer(name, deliver)
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
            route.observer = _Consumer(route.topic, note)
        try:
            await session.subscribe([(f"$share/{self._group}/{shared}", 0), (plain, 0)])
            self._publish(shared, b"probe", 0)
            self._publish(plain, b"probe", 0)
            await asyncio.wait_for(arrived[plain], self.connect_timeout)
            supported = arrived[shared].done()
            await session.unsubscribe([f"$share/{self._group}/{shared}", plain])
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.info("could not tell whether the broker shares subscriptions: %s", _cause(exc))
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
            await handler(Message.from_body(topic, body))

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
            route.observer = _Consumer(topic, handle)
        await self._sync(route)

    async def ack_message(self, message: Message) -> None:
        """Marks the message settled; MQTT has nothing to acknowledge after delivery."""
        if not message.settled:
            message.acked = True

    async def nack_message(self, message: Message, *, requeue: bool = False) -> None:
        """Marks the message settled; MQTT cannot reject or requeue a delivered message."""
        if not message.settled:
            message.nacked = True


class MqttBroker(MqttClient, Broker):
    """Bindings are forwarded by this process, as the original's Binder did.

    For each binding source topic the broker holds a plain subscription and republishes every
    body, byte for byte, to every topic reachable from it through bindings.  Sending each
    reachable topic one copy straight away (instead of letting copies come back and hop on)
    is what makes chains work and cycles terminate: a copy this broker published is recognised
    when it comes back and is not forwarded again.  Round-robin bindings forward like pubsub
    bindings (MQTT has no broker-side queue to share), and ``deadletter`` has no effect because
    MQTT cannot reject a message.  Bindings live in this process only, as in the original.
    """

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        self._bindings: dict[tuple[str, str], Binding] = {}
        self._data: dict[str, list[tuple[Binding, DataHandler]]] = {}
        self._participant_handlers: list[MessageHandler] = []
        self._targets: dict[str, tuple[str, ...]] = {}
        self._echoes: dict[str, Counter[bytes]] = {}

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
            data = decode(body)
            for binding, handler in list(subscribers):
                try:
                    await handler(binding, data)
                except Exception:
                    log.exception("data handler for %s failed", binding.src)
        if topic == DISCOVERY_QUEUE:
            for participant_handler in list(self._participant_handlers):
                try:
                    await participant_handler(Message.from_body(topic, body))
                except Exception:
                    log.exception("participant-change handler failed")

    async def _refresh_observer(self, topic: str) -> None:
        needed = (
            any(s == topic for s, _ in self._bindings)
            or bool(self._data.get(topic))
            or (topic == DISCOVERY_QUEUE and bool(self._participant_handlers))
        )
        await self._set_observer(topic, self._observe if needed else None)

    async def add_binding(self, binding: Binding) -> None:
        key = (binding.src, binding.tgt)
        if key in self._bindings:
            return
        self._bindings[key] = binding
        self._targets.clear()
        if binding.src:
            await self._refresh_observer(binding.src)

    async def remove_binding(self, binding: Binding) -> None:
        if self._bindings.pop((binding.src, binding.tgt), None) is None:
            return
        self._targets.clear()
        if binding.src:
            await self._refresh_observer(binding.src)

    async def list_bindings(self) -> list[Binding]:
        return list(self._bindings.values())

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
