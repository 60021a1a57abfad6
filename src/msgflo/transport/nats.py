"""NATS transport: ``nats://`` and ``tls://`` through nats-py, core NATS or JetStream.

A queue name is a subject (``role.IN``), discovery goes to subject ``fbp``, bodies are the same
UTF-8 JSON as on the other transports.  Consumers of one queue share its messages through a
queue group named after the queue, so several instances of a role split the work.

Core NATS (the default) delivers at most once, like MQTT QoS 0: a subject with no subscriber
drops what is sent to it, and ack/nack only settle the message locally.

JetStream (``?jetstream=1``) delivers at least once.  Every declared queue gets a stream of its
own, named ``msgflo-<queue>`` (characters a stream name may not hold become ``_`` and a hash of
the subject is appended), that captures exactly that subject: an inqueue's stream keeps a
message until a consumer acks it (work-queue retention), an outqueue's stream keeps it until
every consumer of it has acked it (interest retention).  Each inport reads through a durable
pull consumer named after its queue, so a restarted participant continues where it stopped and
its instances share one consumer.  Publishes are acknowledged by the server; those not yet
acknowledged when the connection drops are sent again after the reconnection.  Subjects
nobody declared (the control channel, reply subjects) stay on core NATS.

NATS cannot bind one subject to another.  Edges are wired as on MQTT: the coordinator asks our
participants over the control channel (:mod:`msgflo.control`) to consume the source subject
themselves (:meth:`NatsClient.attach`: a queue group, or on JetStream a durable consumer named
after the inport on the source's stream); where that is not possible :class:`NatsBroker`
forwards in its own process.  A nacked message goes to subject ``dead-<queue>``, and a
round-robin binding with a dead-letter queue forwards that subject to it, as the memory and AMQP
transports route ``dead-<queue>``.

The per-message paths (deliveries, publishes, acks) bypass most of nats-py where
:mod:`._natspy` finds the tested version; ``?fastpath=0`` keeps to its public API.

:class:`NatsClient` owns the connection (:mod:`.nats_connection`) and its collaborators: the
streams (:mod:`.nats_streams`), the acknowledged publisher (:mod:`.nats_publisher`) and one
consumer per subscription (:mod:`.nats_consumers`).

URL: ``nats://user:pass@host:4222?jetstream=1&ack_wait=30&max_msgs=-1&fastpath=0`` (``tls://``
takes ``ca_certs``, ``certfile``, ``keyfile``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import nats.errors
from nats.aio.client import Client as Connection
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy, RetentionPolicy

from msgflo.transport import _natspy
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
    QueueDepth,
    QueueKind,
    TransportError,
    decode,
)
from msgflo.transport.nats_connection import cause, dial
from msgflo.transport.nats_consumers import ACK, NAK, TERM, Puller, Routed, Token
from msgflo.transport.nats_publisher import AckedPublisher
from msgflo.transport.nats_streams import Streams, jetstream_name
from msgflo.transport.reason import unwrap, wrap

log = logging.getLogger(__name__)

DEAD_PREFIX = "dead-"


class NatsClient(Client):
    """A participant's or a tool's NATS connection (see the module docstring).

    nats-py reconnects by itself; this client resends unacknowledged JetStream publishes and
    renews its pull requests when it does.
    """

    scheme = "nats"
    supports_attach = True

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        if address.scheme not in ("nats", "tls"):
            raise TransportError(f"{address.redacted()}: not a nats:// or tls:// URL")
        self.jetstream = address.int_option("jetstream", 0) != 0
        self.counts_queues = self.jetstream
        self._ack_wait = float(address.int_option("ack_wait", 30))
        self._fastpath = FastPath(address.options, "NATS")
        self._wire: _natspy.Wire | None = None
        self._nc: Connection | None = None
        self._streams = Streams(address.redacted(), address.int_option("max_msgs", -1))
        self._publisher: AckedPublisher | None = None
        self._subs: dict[tuple[str, str], Routed | Puller] = {}
        self._pullers: set[Puller] = set()
        self._broadcasts: dict[str, Subscription] = {}
        self._online = asyncio.Event()
        self._offline = asyncio.Event()

    # connection -------------------------------------------------------------------------

    @property
    def fastpath(self) -> bool:
        """Whether the per-message paths bypass nats-py (see :mod:`._natspy`)."""
        return self._fastpath.on

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._online.is_set()

    async def wait_disconnected(self) -> None:
        """Return once the connection is known to be lost (for health checks and tests)."""
        await self._offline.wait()

    async def connect(self) -> None:
        if self._nc is not None:
            return
        nc = await dial(
            self.address,
            self.connect_timeout,
            live=lambda: self._nc is not None,
            disconnected=self._on_disconnected,
            reconnected=self._on_reconnected,
        )
        self._nc = nc
        if self._fastpath.check(lambda: _natspy.unavailable(nc)):
            self._wire = _natspy.Wire(nc)
        if self.jetstream:
            self._streams.js = nc.jetstream()
            self._publisher = AckedPublisher(nc, self.address.redacted(), self._wire)
            await self._publisher.start()
        self._offline.clear()
        self._online.set()

    async def _on_disconnected(self) -> None:
        if self._nc is None or self._nc.is_closed:
            return
        self._online.clear()
        self._offline.set()
        if self._publisher is not None:
            self._publisher.lost_connection()
        log.warning("lost connection to %s; reconnecting", self.address.redacted())

    async def _on_reconnected(self) -> None:
        self._offline.clear()
        self._online.set()
        log.info("reconnected to %s", self.address.redacted())
        if self._publisher is not None:
            await self._publisher.resend()
        for puller in list(self._pullers):
            await puller.renew()
        try:
            await self._notify_reconnected()
        except Exception:
            log.exception("reconnect listener failed")

    async def _subscribe(
        self, subject: str, cb: Any, group: str = "", route: _natspy.Route | None = None
    ) -> tuple[Subscription, bool]:
        """Subscribe (deliveries without headers going to ``route`` where the fast path runs;
        the second value says whether they do) and wait until the server has the subscription,
        so that a message sent right after, on another connection, is not missed."""
        nc = self._connection()
        sub = await nc.subscribe(subject, queue=group, cb=cb)
        routed = self._wire is not None and route is not None and self._wire.route(sub, route)
        with contextlib.suppress(nats.errors.Error, TimeoutError):  # while away: restored later
            await nc.flush(timeout=self.connect_timeout)  # type: ignore[arg-type]
        return sub, routed

    def _connection(self) -> Connection:
        if self._nc is None:
            raise TransportError(f"{self.address.redacted()}: not connected")
        return self._nc

    async def disconnect(self) -> None:
        nc, self._nc = self._nc, None
        self._wire = None
        if nc is None:
            return
        for key in list(self._subs):
            await self._stop(key)
        self._broadcasts.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.flush(), 2.0)
        await nc.close()
        self._online.clear()
        self._offline.set()

    # queues -------------------------------------------------------------------------------

    async def create_queue(self, kind: QueueKind, name: str, *, persistent: bool = True) -> None:
        if self.jetstream:
            retention = RetentionPolicy.WORK_QUEUE if kind is QueueKind.IN else None
            await self._streams.ensure(name, retention, persistent)

    async def remove_queue(self, kind: QueueKind, name: str) -> None:
        await self._streams.remove(name)

    async def queue_depth(self, name: str) -> QueueDepth | None:
        """On JetStream, the messages the queue's stream still holds; core NATS keeps no
        queue."""
        return await self._streams.depth(name)

    # sending ------------------------------------------------------------------------------

    async def send_raw(self, kind: QueueKind, name: str, body: bytes) -> None:
        wire = self._wire
        if wire is None or self._publisher is not None or not wire.publish(name, body):
            await self._publish(name, body)

    async def _publish(
        self, subject: str, body: bytes, *, wait: bool = False
    ) -> asyncio.Future[None] | None:
        """Publish; on JetStream with ``wait``, the future settles with the server's
        acknowledgement."""
        nc = self._connection()
        try:
            if self._publisher is not None and await self._streams.of(subject):
                return await self._publisher.publish(subject, body, wait=wait)
            if self._wire is None or not self._wire.publish(subject, body):
                await nc.publish(subject, body)
        except nats.errors.Error as exc:
            raise TransportError(
                f"{self.address.redacted()}: cannot publish to {subject!r}: {cause(exc)}"
            ) from exc
        return None

    async def send_discovery(self, body: bytes) -> None:
        await self._publish(DISCOVERY_QUEUE, body)

    async def flush(self) -> None:
        """Wait until the server has everything sent so far (and acknowledged it, on JetStream)."""
        nc = self._connection()
        if self._publisher is not None:
            await self._publisher.drain()
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await nc.flush()

    # consuming ----------------------------------------------------------------------------

    async def subscribe_to_queue(self, name: str, handler: MessageHandler) -> None:
        await self._consume(name, name, handler, DeliverPolicy.ALL)

    async def attach(self, source: str, handler: MessageHandler, *, group: str) -> None:
        await self._consume(source, group, handler, DeliverPolicy.NEW)

    async def detach(self, source: str) -> None:
        for key in [k for k in self._subs if k[0] == source and k[1] != source]:
            await self._stop(key)

    async def unsubscribe_from_queue(self, name: str) -> None:
        await self._stop((name, name))

    async def subscribe_broadcast(self, channel: str, handler: MessageHandler) -> None:
        """A plain core subscription (no queue group): every subscriber gets every message."""
        await self.unsubscribe_broadcast(channel)

        async def deliver(msg: Msg) -> None:
            try:
                await handler(Message.from_body(channel, msg.data))
            except Exception:
                log.exception("handler for channel %r failed", channel)

        self._broadcasts[channel], _ = await self._subscribe(channel, deliver)

    async def unsubscribe_broadcast(self, channel: str) -> None:
        sub = self._broadcasts.pop(channel, None)
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _consume(
        self, name: str, group: str, handler: MessageHandler, policy: DeliverPolicy
    ) -> None:
        """Consume ``name`` in queue group ``group``: a core queue subscription, or on JetStream
        a durable pull consumer named after ``group`` on the stream of ``name``."""
        await self._stop((name, group))
        dead = DEAD_PREFIX + group
        stream = await self._streams.of(name)
        if stream is None:
            fast = Token("", dead, False)  # all that settling a core delivery needs

            async def on_core(msg: Msg) -> None:
                await self._deliver(name, msg.data, fast, handler)

            async def on_fast(_reply: bytes, body: bytes, _headers: bytes | None) -> None:
                await self._deliver(name, body, fast, handler)

            inbox = _natspy.Inbox(on_fast, f"{self.address.redacted()} {name}")
            sub, routed = await self._subscribe(name, on_core, group, inbox.push)
            if not routed:
                await inbox.close()
            self._subs[(name, group)] = Routed(self._wire, sub, inbox if routed else None)
            return

        async def on_delivery(reply: str, body: bytes) -> None:
            await self._deliver(name, body, Token(reply, dead, True), handler)

        assert self._streams.js is not None
        puller = Puller(
            js=self._streams.js,
            nc=self._connection(),
            wire=self._wire,
            subscribe=self._subscribe,
            running=self._pullers,
            where=self.address.redacted(),
            stream=stream,
            durable=jetstream_name(group),
            ack_wait=self._ack_wait,
            deliver=on_delivery,
        )
        await puller.start(name, policy)
        self._subs[(name, group)] = puller

    async def _deliver(self, name: str, body: bytes, token: Token, handler: MessageHandler) -> None:
        message = Message.from_envelope(name, body, token)
        try:
            await handler(message)
        except Exception:
            log.exception("handler for queue %r failed", name)
            if not message.settled:
                await self.nack_message(message)

    async def _stop(self, key: tuple[str, str]) -> None:
        sub = self._subs.pop(key, None)
        if sub is not None:
            await sub.stop()

    async def _settle_jetstream(self, token: Token, body: bytes) -> None:
        if self._wire is not None and self._wire.publish(token.reply, body):
            return
        with contextlib.suppress(nats.errors.Error):  # unsettled: the server redelivers
            await self._connection().publish(token.reply, body)

    async def ack_message(self, message: Message) -> None:
        if message.settled:
            return
        message.acked = True
        token = message.token
        if isinstance(token, Token) and token.jetstream:
            await self._settle_jetstream(token, ACK)

    async def nack_message(
        self,
        message: Message,
        *,
        requeue: bool = False,
        reason: Mapping[str, Any] | None = None,
    ) -> None:
        """Requeue (JetStream only; core NATS cannot take a message back), or send the body to
        ``dead-<queue>`` where a round-robin binding's dead-letter queue picks it up."""
        if message.settled:
            return
        message.nacked = True
        token = message.token
        if not isinstance(token, Token):
            return
        if requeue and token.jetstream:
            await self._settle_jetstream(token, NAK)
            return
        body = message.body if reason is None else wrap(message.body, reason)
        log.warning(
            "dead letter of %r published to subject %r (dropped unless a DEAD_ edge, a "
            "subscriber or a stream takes it)",
            message.queue,
            token.dead,
        )
        done = await self._publish(token.dead, body, wait=True)
        if token.jetstream:
            if done is not None:
                with contextlib.suppress(TransportError):
                    await done
            await self._settle_jetstream(token, TERM)


class NatsBroker(NatsClient, Broker):
    """Bindings are forwarded by this process (NATS has no subject-to-subject binding): each
    binding consumes its source in a queue group of its own, ``forward-<target>``, and
    publishes every body to the target.  On JetStream that consumer is durable and acks a
    message only once the target's stream has it.  Bindings live in this process only."""

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        self._bindings: dict[tuple[str, str], Binding] = {}
        self._observers: dict[tuple[str, DataHandler], Subscription] = {}

    async def _forward(self, src: str, tgt: str) -> None:
        if self.jetstream:
            await self._streams.ensure(src, None)

        async def forward(message: Message) -> None:
            # As it came: a dead letter's envelope travels on with its reason.
            body = message.body if message.reason is None else wrap(message.body, message.reason)
            done = await self._publish(tgt, body, wait=True)
            if done is not None:
                await done
            await self.ack_message(message)

        await self._consume(src, f"forward-{tgt}", forward, DeliverPolicy.NEW)

    async def add_binding(self, binding: Binding) -> None:
        key = (binding.src, binding.tgt)
        if key in self._bindings:
            return
        if binding.src:
            await self._forward(binding.src, binding.tgt)
        if binding.type is BindingType.ROUNDROBIN and binding.deadletter:
            await self._forward(DEAD_PREFIX + binding.tgt, binding.deadletter)
        self._bindings[key] = binding

    async def remove_binding(self, binding: Binding) -> None:
        if self._bindings.pop((binding.src, binding.tgt), None) is None:
            return
        if binding.src:
            await self._stop((binding.src, f"forward-{binding.tgt}"))
        if binding.type is BindingType.ROUNDROBIN and binding.deadletter:
            await self._stop((DEAD_PREFIX + binding.tgt, f"forward-{binding.deadletter}"))

    async def list_bindings(self) -> list[Binding]:
        return list(self._bindings.values())

    async def subscribe_data(self, binding: Binding, handler: DataHandler) -> None:
        """A plain subscription sees every message on the subject, JetStream's included."""

        async def observe(msg: Msg) -> None:
            try:
                await handler(binding, decode(unwrap(msg.data)[0]))
            except Exception:
                log.exception("data handler for %s failed", binding.src)

        self._observers[(binding.src, handler)], _ = await self._subscribe(binding.src, observe)

    async def unsubscribe_data(self, binding: Binding, handler: DataHandler) -> None:
        sub = self._observers.pop((binding.src, handler), None)
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def subscribe_participant_change(self, handler: MessageHandler) -> None:
        async def on_discovery(msg: Msg) -> None:
            try:
                await handler(Message.from_body(DISCOVERY_QUEUE, msg.data))
            except Exception:
                log.exception("participant-change handler failed")

        await self._subscribe(DISCOVERY_QUEUE, on_discovery)
