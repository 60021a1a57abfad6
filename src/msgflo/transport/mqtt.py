"""MQTT transport: topics are queues, the broker side routes in-process (the original's Binder).

Wire behaviour follows msgflo-nodejs: a queue name is the topic, nothing is declared on the
broker, bodies are published with QoS 0 and retain false (QoS is selectable with ``?qos=``),
ack/nack are no-ops on the wire, discovery goes to topic ``fbp``.

URL: ``mqtt[s]://user:pass@host:port?qos=1&clientId=X&keepalive=60&shared=1&group=msgflo&fastpath=0``
(``mqtts`` defaults to port 8883; its CA and client certificate: :mod:`msgflo.transport.tls`).
``&version=5`` speaks MQTT 5 instead of 3.1.1, which carries dead-letter reasons as user
properties (:mod:`msgflo.transport.mqtt5`).

The per-message paths run on :mod:`msgflo.transport._paho` (the fast path) when its check
passes, and on :class:`msgflo.transport.mqtt_link.PublicLink` (aiomqtt's public API only) when
it does not or with ``?fastpath=0``.  aiomqtt does not reconnect: :class:`MqttClient` runs that
loop (:func:`msgflo.transport.reconnect.supervise`).

QoS 1 and 2 survive a cut: a client keeps one client id for its whole life (``clientId`` or a
generated one) and asks for a persistent session, so the broker keeps its subscriptions and the
messages sent to them while it is away; publishes the broker had not acknowledged are sent
again after the reconnection (:mod:`msgflo.transport.mqtt_outbox`).  A generated id's session is
ended on :meth:`MqttClient.disconnect`.

Bounded memory: deliveries wait in memory for their handler, up to a high-water mark
(:mod:`msgflo.transport.mqtt_subscriptions`).

Competing consumers: :meth:`MqttClient.subscribe_to_queue` uses a shared subscription
``$share/<group>/<topic>`` so that clients consuming one queue split its messages as AMQP
consumers do (Mosquitto supports this).  amqtt, the embedded broker, accepts a ``$share``
subscription but never delivers anything to it, so by default the client asks the broker once
(:meth:`msgflo.transport.mqtt_subscriptions.Subscriptions._probe`) and falls back to plain
subscriptions, where every consumer sees every message as in the original.  ``?shared=1`` /
``?shared=0`` skip the probe.  Observers (bindings, data subscriptions, discovery) always see
every message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from msgflo.transport import _paho, mqtt5
from msgflo.transport._adapter import FastPath
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
from msgflo.transport.mqtt_forwarding import Forwarding
from msgflo.transport.mqtt_link import Link, PublicLink
from msgflo.transport.mqtt_outbox import OUTBOX_LIMIT, Outbox
from msgflo.transport.mqtt_records import BindingRecord, read_bindings
from msgflo.transport.mqtt_subscriptions import Subscriptions
from msgflo.transport.reason import unwrap, wrap
from msgflo.transport.reconnect import cause, connect_error, supervise
from msgflo.transport.tls import client_context

log = logging.getLogger(__name__)

NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
"""Neither paho nor aiomqtt turns Nagle's algorithm off: a small publish written right after
another then waits for the broker's delayed ACK (40 ms on Linux), which every request-answer
exchange (the shared-subscription probe, control requests, a relay at low load) pays."""

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class MqttClient(Client):
    """A participant's or a tool's MQTT connection (see the module docstring).

    It owns the connection (opening sessions, and the reconnect loop); sending goes through
    its :class:`~msgflo.transport.mqtt_outbox.Outbox`, receiving through its
    :class:`~msgflo.transport.mqtt_subscriptions.Subscriptions`.
    """

    scheme = "mqtt"

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        if address.scheme not in DEFAULT_PORTS:
            raise TransportError(f"{address.redacted()}: not an mqtt:// or mqtts:// URL")
        self._qos = address.int_option("qos", 0)
        if self._qos not in (0, 1, 2):
            raise TransportError(f"{address.redacted()}: qos must be 0, 1 or 2")
        shared: bool | None = None
        if "shared" in address.options:
            shared = address.int_option("shared", 0) != 0
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
        self._link: Link | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = True
        self._online = asyncio.Event()
        self._offline = asyncio.Event()
        self._outbox = Outbox(address.redacted())
        self._subscriptions = Subscriptions(
            qos=self._qos,
            group=address.options.get("group", "msgflo"),
            shared=shared,
            timeout=connect_timeout,
            connected=lambda: self.connected,
            publish=self._outbox.publish,
        )
        self._will: aiomqtt.Will | None = None

    # connection -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._online.is_set() and not self._closed

    @property
    def buffered(self) -> int:
        """Bytes of deliveries waiting for their handlers (bounded near the high-water mark)."""
        return self._subscriptions.held

    def held(self, name: str) -> int | None:
        """An MQTT broker keeps no queue for us: deliveries read but not yet handled are the
        backlog of a topic."""
        return self._subscriptions.waiting(name)

    @property
    def client_id(self) -> str:
        """The MQTT client id, the same on every connection of this client."""
        return self._client_id

    @property
    def fastpath(self) -> bool:
        """Whether the per-message paths run on :mod:`msgflo.transport._paho`."""
        return self._fastpath.on

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

    def _new_session(
        self, timeout: float, *, clean: bool, reader: str | None = None
    ) -> aiomqtt.Client:
        """This client's session, or with ``reader`` a short-lived one under that id and
        without the last will, in the same protocol version (a v5-only broker refuses 3.1.1)."""
        session = aiomqtt.Client(
            self.address.host or "127.0.0.1",
            self.address.port or DEFAULT_PORTS[self.address.scheme],
            username=self.address.username,
            password=self.address.password,
            identifier=reader or self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if self._v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if self._v5 else clean,
            clean_start=clean if self._v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=mqtt5.session_properties(clean) if self._v5 else None,
            keepalive=self._keepalive,
            tls_context=self._tls,
            timeout=timeout,
            will=None if reader else self._will,
            socket_options=NO_DELAY,
        )
        # aiomqtt warns once per call beyond this many in flight; a relay publishes hundreds,
        # a coordinator wiring a large graph subscribes hundreds.
        session.pending_calls_threshold = OUTBOX_LIMIT
        return session

    async def _open(self, timeout: float) -> None:
        """Connect a fresh session and restore every subscription on it."""
        session = self._new_session(timeout, clean=self._clean_session)
        deliver = self._subscriptions.deliver
        link: Link = (
            _paho.FastLink(session, deliver, timeout)
            if self._fastpath.check(lambda: _paho.unavailable(session))
            else PublicLink(session, deliver)
        )
        try:
            await session.__aenter__()
            filters = self._subscriptions.filters()
            if filters:
                await session.subscribe(filters)
        except BaseException:
            link.abandon()
            raise
        link.start()
        self._link = self._outbox.link = link
        self._subscriptions.use(link)

    def _set_online(self) -> None:
        self._outbox.resume()
        self._offline.clear()
        self._online.set()

    async def _lost(self) -> BaseException | None:
        link = self._link
        assert link is not None
        why = await link.lost()
        self._online.clear()
        self._offline.set()
        self._outbox.hold(link)
        self._session_lost()
        return why

    async def _reopen(self) -> None:
        await asyncio.wait_for(self._open(min(self.connect_timeout, 5.0)), 10.0)
        self._set_online()

    def _session_lost(self) -> None:
        """Hook for state that belongs to one session only."""

    async def disconnect(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._outbox.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        link, self._link = self._link, None
        self._outbox.link = None
        self._subscriptions.use(None)
        self._online.clear()
        self._offline.set()
        if link is not None:
            await link.close()
            if self._end_session:
                await self._end_persistent_session()
        await self._subscriptions.close()
        self._outbox.clear()

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

    async def send_raw(self, kind: QueueKind, name: str, body: bytes) -> None:
        await self._outbox.send(name, body, self._qos)

    async def send_discovery(self, body: bytes) -> None:
        await self._outbox.send(DISCOVERY_QUEUE, body, 0)

    async def flush(self) -> None:
        await self._outbox.flush()

    # queues and subscriptions ---------------------------------------------------------------

    async def create_queue(self, kind: QueueKind, name: str, *, persistent: bool = True) -> None:
        """Nothing to declare: an MQTT topic exists while someone publishes or subscribes."""

    async def remove_queue(self, kind: QueueKind, name: str) -> None:
        """Nothing to delete (see :meth:`create_queue`)."""

    supports_attach = True

    async def subscribe_to_queue(self, name: str, handler: MessageHandler) -> None:
        await self._consume(name, handler, None)

    async def attach(self, source: str, handler: MessageHandler, *, group: str) -> None:
        await self._consume(source, handler, group)

    async def detach(self, source: str) -> None:
        await self.unsubscribe_from_queue(source)

    async def _consume(self, name: str, handler: MessageHandler, group: str | None) -> None:
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

        await self._subscriptions.consume(name, deliver, group)

    async def unsubscribe_from_queue(self, name: str) -> None:
        await self._subscriptions.stop_consuming(name)

    async def subscribe_broadcast(self, channel: str, handler: MessageHandler) -> None:
        """A plain (never shared) subscription: every subscriber gets every message."""

        async def deliver(topic: str, body: bytes) -> None:
            await handler(Message.from_body(topic, mqtt5.plain(body)))

        await self._subscriptions.observe(channel, deliver)

    async def unsubscribe_broadcast(self, channel: str) -> None:
        await self._subscriptions.observe(channel, None)

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
        await self._outbox.send(dead, body, self._qos)


class MqttBroker(MqttClient, Broker):
    """Bindings are forwarded by this process, as the original's Binder did.

    For each binding source topic the broker holds a plain subscription and republishes every
    body, byte for byte, to every topic reachable from it through bindings
    (:mod:`msgflo.transport.mqtt_forwarding`).  Round-robin bindings forward like pubsub
    bindings (MQTT has no broker-side queue to share).  A ``deadletter`` forwards the topic
    ``dead-<tgt>``, where participants publish what they fail, to the deadletter queue's topic.
    Bindings live in this process only, as in the original; the coordinator publishes them
    (:meth:`announce_bindings`, :mod:`msgflo.transport.mqtt_records`) so that other processes
    can see them.
    """

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        self._forwarding = Forwarding()
        self._data: dict[str, list[tuple[Binding, DataHandler]]] = {}
        self._participant_handlers: list[MessageHandler] = []
        self._record = BindingRecord(self.client_id, connect_timeout)
        # A binder that dies without a word takes its record with it.
        self._will = self._record.will

    async def _reopen(self) -> None:
        await super()._reopen()
        assert self._link is not None
        await self._record.restore(self._link)

    async def disconnect(self) -> None:
        if self.connected:
            await self._record.withdraw(self._link)
        await super().disconnect()

    async def announce_bindings(self, bindings: Sequence[Binding]) -> None:
        """The retained record ``msgflo/bindings/<client id>``, cleared on disconnect and, by
        the connection's last will, when this process dies."""
        await self._record.announce(bindings, self._link)

    async def broker_bindings(self) -> list[Binding]:
        """Every binder's record, read on a short-lived connection of its own."""
        reader = f"msgflo-read-{uuid.uuid4().hex[:16]}"
        session = self._new_session(self.connect_timeout, clean=True, reader=reader)
        return await read_bindings(session, self.connect_timeout, self.address.redacted())

    def _session_lost(self) -> None:
        self._forwarding.forget_echoes()

    async def _observe(self, topic: str, body: bytes) -> None:
        forwarding = self._forwarding
        if not forwarding.is_echo(topic, body):
            routes = self._subscriptions.routes
            for target in forwarding.reachable(topic):
                route = routes.get(target)
                if route is not None and route.observer is not None:
                    forwarding.expect_echo(target, body)
                await self._outbox.send(target, body, self._qos)
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
            self._forwarding.forwards_from(topic)
            or bool(self._data.get(topic))
            or (topic == DISCOVERY_QUEUE and bool(self._participant_handlers))
        )
        await self._subscriptions.observe(topic, self._observe if needed else None)

    async def add_binding(self, binding: Binding) -> None:
        for src in self._forwarding.add(binding):
            await self._refresh_observer(src)

    async def remove_binding(self, binding: Binding) -> None:
        for src in self._forwarding.remove(binding):
            await self._refresh_observer(src)

    async def list_bindings(self) -> list[Binding]:
        return self._forwarding.bindings

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
