"""AMQP 0-9-1 (RabbitMQ) transport, wire-compatible with msgflo-nodejs 0.11.1.

Topology is declared exactly as msgflo-nodejs (amqplib 0.5) declares it, so that a Node peer and
we can declare the same names in any order without RabbitMQ answering 406 PRECONDITION_FAILED:

- inqueue ``Q``: queue ``Q`` (durable, not exclusive, not auto-delete, arguments
  ``{"x-dead-letter-exchange": "dead-Q"}``) plus a fanout exchange ``Q`` bound to it with key ``""``;
- outqueue ``X``: fanout exchange ``X`` (durable);
- ``persistent=False``: the same but non-durable and auto-delete (the DLX argument stays);
- discovery: we publish to the durable fanout exchange ``fbp``, each announcement with a TTL of
  :data:`DISCOVERY_TTL`; every coordinator or observer binds a private queue of its own to it
  (msgflo/msgflo#13), so none takes announcements from another.  A coordinator also consumes the
  durable queue ``fbp`` (no arguments, as amqplib's ``assertQueue('fbp')``), where the original's
  participants send theirs.  Only with ``?fbp_queue=1`` is that queue bound to the exchange, so
  that an original coordinator hears us; otherwise nobody's announcements pile up in it unread.
  See :meth:`AmqpBroker.subscribe_participant_change`.

URL: ``amqp[s]://user:pass@host:port/vhost?prefetch=N&heartbeat=N&persistent=1&fbp_queue=1``
(guest/guest and vhost ``/`` by default).

- ``prefetch`` defaults to 200, not the original's 2: an input is acked only after its outputs
  are confirmed, so a relay needs enough deliveries in flight to cover the whole cycle (deliver,
  process, publish, confirm, ack); 200 covers 20 ms of it at 10,000 msg/s, where 50 held a relay
  to ~8,000 msg/s on a busy 2-core machine and 2 to a few dozen (RabbitMQ's own advice is
  100-300).  It also bounds what one consumer takes from a shared queue and what is redelivered
  after a crash: use ``?prefetch=1`` for long jobs on round-robin queues.
- Messages are transient (delivery mode 1) like the original; ``?persistent=1`` makes them
  persistent (delivery mode 2) so queued messages survive a broker restart.

Delivery guarantee is at-least-once.  Every publish is confirmed by the broker, but a send never
waits for its confirm; instead an ack or nack is held back until every publish made earlier on
this client is confirmed, so an input is settled only once its outputs are safe.  Publishes that
were not confirmed when the connection dropped are published again after reconnecting, and the
broker redelivers every delivery that was not acked.

aio-pika opens the connection; the exact declarations go through aiormq channels underneath.
The per-message paths (publish, confirm, ack, delivery) run on :mod:`msgflo.transport._aiormq`
when its check passes, and on :class:`~msgflo.transport.amqp_session.PublicPath` (aiormq's
public channel API, a task per message, and a random ``message-id`` property on every publish)
when it does not or with ``?fastpath=0``.  Either way publishes are tracked by delivery tag in
one ordered dict per session, confirms pop them, and held acks are released right there,
coalesced into one ``multiple=True`` ack for the oldest unsettled deliveries.

A consumer the broker refuses (the queue is missing, access is refused, another connection holds
it exclusively) is an error: :meth:`AmqpClient.subscribe_to_queue` raises :class:`TransportError`
naming the queue and the broker's reason, and after a reconnection the refusal is logged.

:class:`AmqpClient` ties together what each concern keeps in a room of its own:

- :mod:`~msgflo.transport.amqp_session`: one connection, its data and topology channels;
- :mod:`~msgflo.transport.amqp_topology`: declarations, replayed on every new connection;
- :mod:`~msgflo.transport.amqp_confirms`: publisher confirms and acks held back until then;
- :mod:`~msgflo.transport.amqp_failures`: dead letters with their reason, delayed retries;
- :mod:`~msgflo.transport.amqp_lookup`: passive declares (does it exist, how deep is it);
- :mod:`~msgflo.transport.amqp_consumers`: consumers and their workers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiormq
import aiormq.exceptions
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from msgflo.transport import _aiormq
from msgflo.transport._adapter import FastPath
from msgflo.transport.amqp_confirms import Confirms
from msgflo.transport.amqp_consumers import Consumers, Process
from msgflo.transport.amqp_errors import describe
from msgflo.transport.amqp_failures import Failures
from msgflo.transport.amqp_lookup import Lookup
from msgflo.transport.amqp_session import Session, Token
from msgflo.transport.amqp_topology import (
    Key,
    Op,
    Topology,
    bind_exchange,
    bind_queue,
    declare_exchange,
    declare_queue,
    unbind_queue,
)
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
from msgflo.transport.reason import attempt_of, from_headers
from msgflo.transport.reconnect import connect_error, supervise
from msgflo.transport.tls import TLS_OPTIONS, client_context

log = logging.getLogger(__name__)

DEFAULT_PREFETCH = 200

DISCOVERY_TTL = 60.0
"""Seconds an announcement of ours may wait in a queue (the default discovery period): a
participant announces again well within it, so an older one is stale."""

_OWN_OPTIONS = (
    frozenset({"prefetch", "persistent", "fastpath", "fbp_queue", "management"}) | TLS_OPTIONS
)
_TRUE = frozenset({"1", "true", "yes", "on"})


def _broker_url(address: Address) -> str:
    """The URL for aio-pika: our own options (TLS included) removed, the rest kept."""
    parts = urlsplit(address.url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _OWN_OPTIONS
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


class AmqpClient(Client):
    scheme = "amqp"
    counts_queues = True

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        self.prefetch = address.int_option("prefetch", DEFAULT_PREFETCH)
        persistent = address.options.get("persistent", "0").lower() in _TRUE
        self._properties = spec.Basic.Properties(delivery_mode=2 if persistent else 1)
        self._url = _broker_url(address)
        self._tls = client_context(address)
        self._fastpath_switch = FastPath(address.options, "AMQP")
        self._running = False
        self._session: Session | None = None
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        feed_fbp_queue = address.options.get("fbp_queue", "0").lower() in _TRUE
        self._topology = Topology(address, self._wait_session, feed_fbp_queue=feed_fbp_queue)
        self._confirms = Confirms(address, self._wait_session, self._properties.delivery_mode or 1)
        self._consumers = Consumers(address, self._wait_session, self._confirms.requeue)
        self._failures = Failures(self._topology, self._confirms)
        self._lookup = Lookup(address, self._wait_session)
        self._broadcasts: dict[str, str] = {}
        # Bound once: every send and every ack goes straight to them.
        self._declared_exchanges = self._topology.exchanges
        self._publish = self._confirms.publish
        self._settle = self._confirms.settle

    # -- connection lifecycle -------------------------------------------------------------------

    async def connect(self) -> None:
        if self._running:
            return
        try:
            async with asyncio.timeout(self.connect_timeout):
                session = await self._open_session()
        except TimeoutError as exc:
            raise connect_error(self, exc, f"no answer within {self.connect_timeout:g} s") from exc
        except Exception as exc:
            raise connect_error(self, exc, describe(exc)) from exc
        self._running = True
        self._session = session
        self._ready.set()
        self._confirms.start(session)
        self._spawn(supervise(self, lost=self._lost, reopen=self._reopen, describe=describe))

    @property
    def fastpath(self) -> bool:
        """Whether the per-message paths run on :mod:`msgflo.transport._aiormq`."""
        return self._fastpath_switch.on

    def _check_fastpath(self, amqp: aiormq.Connection) -> bool:
        return self._fastpath_switch.check(lambda: _aiormq.unavailable(amqp))

    async def disconnect(self) -> None:
        if not self._running:
            return
        await self._confirms.finish()
        self._running = False
        self._confirms.stop()
        self._ready.set()  # wake waiters, they see that we are closed
        tasks = list(self._tasks) + self._consumers.workers()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        session, self._session = self._session, None
        self._confirms.detach()
        if session is not None:
            await session.close()
        self._consumers.clear()
        self._topology.clear()
        self._confirms.clear()
        self._ready.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _open_session(self) -> Session:
        """Connect, declare again what was declared, and resume consumers (not yet publishing)."""
        session = await Session.open(
            self._consumers.begin_session(),
            self._url,
            self.connect_timeout,
            self.prefetch,
            self._properties,
            self._confirms.on_confirm,
            self._check_fastpath,
            self._tls,
        )
        try:
            await self._topology.replay(session)
            await self._consumers.resume(session)
        except BaseException:
            await session.close()
            raise
        return session

    async def _lost(self) -> None:
        session = self._session
        assert session is not None
        await session.wait_closed()
        self._session = None
        self._confirms.detach()
        self._ready.clear()
        await session.close()

    async def _reopen(self) -> None:
        session = await self._open_session()
        self._session = session
        self._ready.set()
        self._confirms.attach(session)

    async def _wait_session(self) -> Session:
        while True:
            if not self._running:
                raise TransportError(f"not connected to {self.address.redacted()}")
            session = self._session
            if session is not None and session.alive:
                return session
            self._ready.clear()
            await self._ready.wait()

    # -- topology -------------------------------------------------------------------------------

    async def create_queue(self, kind: QueueKind, name: str, *, persistent: bool = True) -> None:
        await self._topology.create_queue(kind, name, persistent=persistent)

    async def remove_queue(self, kind: QueueKind, name: str) -> None:
        await self._topology.remove_queue(kind, name)

    async def queue_depth(self, name: str) -> QueueDepth | None:
        """A passive declare: RabbitMQ answers with the ready messages and consumers of the
        queue, no management plugin needed."""
        session = self._session
        if not self._running or session is None or not session.alive:
            return None
        return await self._lookup.depth(session, name)

    async def check_queue(self, name: str) -> None:
        await self._lookup.check_queue(name)

    # -- publishing -----------------------------------------------------------------------------

    async def send_raw(self, kind: QueueKind, name: str, body: bytes) -> None:
        if kind is QueueKind.OUT:
            if name not in self._declared_exchanges:
                await self._topology.ensure_exchange(name)
            await self._publish(name, "", body)
        else:
            await self._publish("", name, body)

    async def send_discovery(self, body: bytes) -> None:
        await self._topology.ensure_discovery()
        await self._confirms.publish_apart(DISCOVERY_QUEUE, "", body, expiration=DISCOVERY_TTL)

    async def send_checked(self, kind: QueueKind, name: str, body: bytes) -> None:
        """Published ``mandatory``: RabbitMQ returns a message no queue takes, which would
        otherwise be confirmed and dropped (a missing queue, a name in the wrong case)."""
        if kind is QueueKind.OUT and not await self._lookup.exists(name, "exchange"):
            raise TransportError(await self._lookup.missing(name, "exchange"))
        exchange, routing_key = (name, "") if kind is QueueKind.OUT else ("", name)
        try:
            await self._confirms.publish_apart(exchange, routing_key, body, mandatory=True)
        except aiormq.exceptions.PublishError as exc:
            if kind is QueueKind.OUT:
                raise TransportError(
                    f"no queue is bound to exchange {name!r} on {self.address.redacted()}: "
                    "the message was dropped"
                ) from exc
            raise TransportError(await self._lookup.missing(name, "queue")) from exc

    async def flush(self) -> None:
        await self._confirms.flush()

    # -- acknowledging --------------------------------------------------------------------------

    async def ack_message(self, message: Message) -> None:
        if message.settled:
            return
        message.acked = True
        self._settle(message, ack=True)

    async def nack_message(
        self,
        message: Message,
        *,
        requeue: bool = False,
        reason: Mapping[str, Any] | None = None,
    ) -> None:
        """See :meth:`msgflo.transport.amqp_failures.Failures.nack`."""
        await self._failures.nack(message, requeue=requeue, reason=reason)

    async def retry_later(self, message: Message, delay: float, attempt: int) -> bool:
        """See :meth:`msgflo.transport.amqp_failures.Failures.retry_later`."""
        return await self._failures.retry_later(message, delay, attempt)

    # -- consuming ------------------------------------------------------------------------------

    async def subscribe_to_queue(self, name: str, handler: MessageHandler) -> None:
        await self._consumers.consume(name, self._deliver_to(name, handler), no_ack=False)

    def _deliver_to(self, queue: str, handler: MessageHandler, *, ack: bool = False) -> Process:
        async def process(raw: DeliveredMessage, token: Token | None) -> None:
            message = Message.from_body(queue, raw.body, token)
            headers = raw.header.properties.headers
            if headers:
                message.reason = from_headers(headers)
                message.attempt = attempt_of(headers)
            if raw.redelivered:
                message.redelivered = True
            try:
                await handler(message)
            except Exception:
                log.exception("handler for queue %r failed", queue)
                await self.nack_message(message)
            if ack:
                await self.ack_message(message)

        return process

    async def tap(self, name: str, handler: MessageHandler) -> str:
        """The queue ``name`` if there is one (taking its messages, as the original's dump does);
        otherwise a private copy of what the exchange ``name`` (an outport) carries, in a queue
        that goes away with the connection."""
        if await self._lookup.exists(name, "queue"):
            await self.subscribe_to_queue(name, handler)
            return name
        if not await self._lookup.exists(name, "exchange"):
            raise TransportError(await self._lookup.missing(name, "queue", "exchange"))
        private = await self._private_queue("tap", name)
        await self._consumers.consume(private, self._deliver_to(name, handler), no_ack=False)
        return private

    async def subscribe_broadcast(self, channel: str, handler: MessageHandler) -> None:
        """A private, auto-deleted queue bound to the fanout exchange ``channel`` (declared
        durable, as outports are, so that any side may declare it first)."""
        await self._topology.ensure_exchange(channel)
        name = await self._private_queue("broadcast", channel)
        self._broadcasts[channel] = name
        await self._consumers.consume(name, self._deliver_to(channel, handler), no_ack=True)

    async def _private_queue(self, purpose: str, exchange: str) -> str:
        """An exclusive queue of this connection bound to ``exchange`` (replayed on reconnect
        like every declaration), for reading a copy of what the exchange routes."""
        name = f".msgflo-{purpose}-{uuid.uuid4()}"
        await self._topology.declare(
            declare_queue(name, durable=False, exclusive=True),
            f"declaring a private queue for {exchange!r}",
            key=("queue", name),
        )
        await self._topology.declare(
            bind_queue(name, exchange),
            f"binding a private queue to {exchange!r}",
            key=("qbind", name, exchange),
        )
        return name

    async def unsubscribe_broadcast(self, channel: str) -> None:
        """Cancels the consumer only: the private queue is exclusive and goes with the
        connection, so stopping never waits for a broker that may be away."""
        name = self._broadcasts.pop(channel, None)
        if name is None:
            return
        await self.unsubscribe_from_queue(name)
        self._topology.forget(lambda k: k[0] in ("queue", "qbind") and k[1] == name)

    async def unsubscribe_from_queue(self, name: str) -> None:
        await self._consumers.cancel(name, self._session)


class AmqpBroker(AmqpClient, Broker):
    """Bindings are real RabbitMQ bindings, laid out as msgflo-nodejs' MessageBroker does."""

    bindings_outlive_clients = True

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        self._bindings: dict[Binding, None] = {}
        self._data_queue = f".msgflo-broker-subscriptions-{uuid.uuid4()}"
        self._data_handlers: dict[str, list[tuple[Binding, DataHandler]]] = {}

    async def disconnect(self) -> None:
        await super().disconnect()
        self._bindings.clear()
        self._data_handlers.clear()

    @staticmethod
    def _binding_ops(binding: Binding) -> Iterable[tuple[Key, Op]]:
        if binding.type is BindingType.PUBSUB:
            yield ("qbind", binding.tgt, binding.src), bind_queue(binding.tgt, binding.src)
            return
        if binding.src and binding.tgt:
            direct = f"out-{binding.src}"
            yield ("exchange", direct), declare_exchange(direct, "direct")
            yield ("xbind", direct, binding.src), bind_exchange(direct, binding.src)
            yield ("qbind", binding.tgt, direct), bind_queue(binding.tgt, direct)
        if binding.deadletter and binding.tgt:
            dead = f"dead-{binding.tgt}"
            yield ("exchange", dead), declare_exchange(dead)
            yield ("qbind", binding.deadletter, dead), bind_queue(binding.deadletter, dead)

    async def add_binding(self, binding: Binding) -> None:
        if binding.src:
            # A source that only announced itself (a foreign participant, msgflo-register) has
            # no exchange yet, and RabbitMQ refuses a binding to it (404): declare it first.
            await self._topology.ensure_exchange(binding.src)
        for key, op in self._binding_ops(binding):
            await self._topology.declare(op, f"adding binding {binding.to_json()}", key=key)
        self._bindings[binding] = None

    async def remove_binding(self, binding: Binding) -> None:
        self._bindings.pop(binding, None)
        for key, _ in self._binding_ops(binding):
            if key[0] != "qbind":
                continue  # exchanges and exchange bindings may serve other bindings
            self._topology.discard(key)
            _, queue, exchange = key
            await self._topology.declare(
                unbind_queue(queue, exchange), f"removing binding {binding.to_json()}"
            )

    async def list_bindings(self) -> list[Binding]:
        return list(self._bindings)

    async def broker_bindings(self) -> list[Binding]:
        """Read through the management HTTP API (:mod:`msgflo.transport.amqp_management`),
        imported here: its HTTP client costs every participant ~10 MB and 0.1 s at start, and
        only coordinators and ``msgflo-setup --check`` ask."""
        from msgflo.transport.amqp_management import bindings_from_links, read_links

        return bindings_from_links(await read_links(self.address))

    async def subscribe_data(self, binding: Binding, handler: DataHandler) -> None:
        if self._data_queue not in self._consumers:
            await self._topology.declare(
                declare_queue(self._data_queue, durable=False, exclusive=True),
                "declaring the data subscription queue",
                key=("queue", self._data_queue),
            )
            await self._consumers.consume(self._data_queue, self._dispatch_data, no_ack=True)
        if binding.src not in self._data_handlers:
            await self._topology.ensure_exchange(binding.src)
            await self._topology.declare(
                bind_queue(self._data_queue, binding.src),
                f"subscribing to data on {binding.src!r}",
                key=("qbind", self._data_queue, binding.src),
            )
            self._data_handlers[binding.src] = []
        self._data_handlers[binding.src].append((binding, handler))

    async def unsubscribe_data(self, binding: Binding, handler: DataHandler) -> None:
        handlers = self._data_handlers.get(binding.src)
        if not handlers or (binding, handler) not in handlers:
            return
        handlers.remove((binding, handler))
        if handlers:
            return
        del self._data_handlers[binding.src]
        self._topology.discard(("qbind", self._data_queue, binding.src))
        await self._topology.declare(
            unbind_queue(self._data_queue, binding.src),
            f"unsubscribing from data on {binding.src!r}",
        )

    async def _dispatch_data(self, raw: DeliveredMessage, token: Token | None) -> None:
        data = decode(raw.body)
        for binding, handler in list(self._data_handlers.get(raw.exchange or "", ())):
            try:
                await handler(binding, data)
            except Exception:
                log.exception("data handler for %s failed", binding.to_json())

    async def subscribe_participant_change(
        self, handler: MessageHandler, *, exclusive: bool = False
    ) -> None:
        """Receive discovery messages.

        Announcements of our participants come through a private, auto-deleted queue bound to
        the exchange ``fbp``: every coordinator and observer hears every one, without taking it
        from another.  Unless ``exclusive``, this also consumes the queue ``fbp`` like the
        original coordinator (each message acked after ``handler`` returns), where the
        original's participants send their announcements; several consumers share those.
        """
        await self._topology.ensure_discovery()
        await self.subscribe_broadcast(DISCOVERY_QUEUE, handler)
        if not exclusive:
            await self._topology.ensure_discovery_queue()
            await self._consumers.consume(
                DISCOVERY_QUEUE, self._deliver_to(DISCOVERY_QUEUE, handler, ack=True), no_ack=False
            )
