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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiormq
import aiormq.abc
import aiormq.exceptions
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands as spec

from msgflo.transport import _aiormq
from msgflo.transport._adapter import FastPath
from msgflo.transport.amqp_errors import describe, refusal
from msgflo.transport.amqp_management import bindings_from_links, read_links
from msgflo.transport.amqp_session import Publish, Session, Token
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
from msgflo.transport.reason import (
    RETRY_HEADER,
    RETRY_QUEUE_PREFIX,
    attempt_of,
    from_headers,
    to_headers,
)
from msgflo.transport.reconnect import connect_error, supervise
from msgflo.transport.tls import TLS_OPTIONS, client_context

log = logging.getLogger(__name__)

DEFAULT_PREFETCH = 200
MAX_UNCONFIRMED = 1024
"""Publishes in flight (or buffered while disconnected) before a send waits."""
MAX_UNCONFIRMED_BYTES = 64 * 1024 * 1024
DISCONNECT_GRACE = 5.0
"""How long disconnect() waits for outstanding confirms before giving up on them."""

DISCOVERY_TTL = 60.0
"""Seconds an announcement of ours may wait in a queue (the default discovery period): a
participant announces again well within it, so an older one is stale."""

_OWN_OPTIONS = (
    frozenset({"prefetch", "persistent", "fastpath", "fbp_queue", "management"}) | TLS_OPTIONS
)
_TRUE = frozenset({"1", "true", "yes", "on"})
_REFUSED = (
    aiormq.exceptions.ChannelAccessRefused,
    aiormq.exceptions.ChannelLockedResource,
    aiormq.exceptions.ChannelNotFoundEntity,
    aiormq.exceptions.ChannelPreconditionFailed,
)
"""What the broker answers to a consumer it will not have: 403, 405, 404, 406."""

_Process = Callable[[DeliveredMessage, "Token | None"], Awaitable[None]]


@dataclass(slots=True)
class _Settle:
    after: int
    """Sequence number of the last publish that must be confirmed before this goes out."""
    token: Token
    ack: bool
    requeue: bool = False


@dataclass(eq=False)
class _Consumer:
    queue: str
    no_ack: bool
    process: _Process
    inbox: asyncio.Queue[tuple[int, DeliveredMessage] | None] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None
    tag: str | None = None
    cancelled: bool = False


def _broker_url(address: Address) -> str:
    """The URL for aio-pika: our own options (TLS included) removed, the rest kept."""
    parts = urlsplit(address.url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _OWN_OPTIONS
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _case_variants(name: str) -> list[str]:
    """Likely intended spellings of a queue name: ports are upper case (``role.IN``)."""
    role, dot, port = name.rpartition(".")
    candidates = [name.upper(), name.lower()]
    if dot:
        candidates[:0] = [f"{role}.{port.upper()}", f"{role.lower()}.{port.upper()}"]
    return [c for c in dict.fromkeys(candidates) if c != name]


class AmqpClient(Client):
    scheme = "amqp"
    counts_queues = True

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        self.prefetch = address.int_option("prefetch", DEFAULT_PREFETCH)
        persistent = address.options.get("persistent", "0").lower() in _TRUE
        self._properties = spec.Basic.Properties(delivery_mode=2 if persistent else 1)
        feed_fbp_queue = address.options.get("fbp_queue", "0").lower() in _TRUE
        self._url = _broker_url(address)
        self._tls = client_context(address)
        self._fastpath_switch = FastPath(address.options, "AMQP")
        self._running = False
        self._generation = 0
        self._session: Session | None = None
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._topology = Topology(address, self._wait_session, feed_fbp_queue=feed_fbp_queue)
        # The same set: every send to an outport looks there first.
        self._declared_exchanges = self._topology.exchanges
        self._consumers: dict[str, _Consumer] = {}
        self._broadcasts: dict[str, str] = {}
        # Publisher side: every publish stays here until the broker confirms it.
        self._seq = 0
        self._unconfirmed: OrderedDict[int, Publish] = OrderedDict()
        self._unconfirmed_bytes = 0
        self._room = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._publish_errors: list[str] = []
        # Acks and nacks wait here until the publishes made before them are confirmed.
        self._settle_queue: deque[_Settle] = deque()
        self._turn_end_scheduled = False
        # A channel of its own for passive declares (a 404 closes it, and only it).
        self._probe: tuple[Session, AbstractChannel] | None = None

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
        self._publish_session(session)
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
        if self._unconfirmed and self._session is not None:
            with contextlib.suppress(TimeoutError, TransportError):
                async with asyncio.timeout(DISCONNECT_GRACE):
                    await self.flush()
        session = self._session
        if session is not None:
            self._release()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(DISCONNECT_GRACE):
                    await session.drain()
        self._running = False
        if self._unconfirmed:
            log.warning(
                "%d message(s) to %s were never confirmed by the broker",
                len(self._unconfirmed),
                self.address.redacted(),
            )
        self._ready.set()  # wake waiters, they see that we are closed
        self._room.set()
        self._drained.set()
        tasks = list(self._tasks) + [c.worker for c in self._consumers.values() if c.worker]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._consumers.clear()
        self._topology.clear()
        self._unconfirmed.clear()
        self._unconfirmed_bytes = 0
        self._settle_queue.clear()
        self._ready.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _open_session(self) -> Session:
        """Connect, declare again what was declared, and resume consumers (not yet publishing)."""
        self._generation += 1
        session = await Session.open(
            self._generation,
            self._url,
            self.connect_timeout,
            self.prefetch,
            self._properties,
            self._on_confirm,
            self._check_fastpath,
            self._tls,
        )
        try:
            await self._topology.replay(session)
            for consumer in list(self._consumers.values()):
                try:
                    await self._start_consumer(session, consumer)
                except TransportError as exc:
                    log.error("%s", exc)  # kept: the next connection tries again
        except BaseException:
            await session.close()
            raise
        return session

    def _publish_session(self, session: Session) -> None:
        """Make ``session`` the live one and hand it every publish not yet confirmed, in order."""
        self._session = session
        self._ready.set()
        for pub in self._unconfirmed.values():
            session.publish(pub)
        self._end_turn_soon()

    async def _lost(self) -> None:
        session = self._session
        assert session is not None
        await session.wait_closed()
        self._session = None
        self._ready.clear()
        await session.close()

    async def _reopen(self) -> None:
        self._publish_session(await self._open_session())

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
        await self._publish_apart(DISCOVERY_QUEUE, "", body, expiration=DISCOVERY_TTL)

    async def send_checked(self, kind: QueueKind, name: str, body: bytes) -> None:
        """Published ``mandatory``: RabbitMQ returns a message no queue takes, which would
        otherwise be confirmed and dropped (a missing queue, a name in the wrong case)."""
        if kind is QueueKind.OUT and not await self._exists(name, "exchange"):
            raise TransportError(await self._missing(name, "exchange"))
        exchange, routing_key = (name, "") if kind is QueueKind.OUT else ("", name)
        try:
            await self._publish_apart(exchange, routing_key, body, mandatory=True)
        except aiormq.exceptions.PublishError as exc:
            if kind is QueueKind.OUT:
                raise TransportError(
                    f"no queue is bound to exchange {name!r} on {self.address.redacted()}: "
                    "the message was dropped"
                ) from exc
            raise TransportError(await self._missing(name, "queue")) from exc

    async def _publish_apart(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        mandatory: bool = False,
        expiration: float | None = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Publish on a channel of its own and wait for the confirm.

        For the rare publishes that need what the batched path leaves out: ``mandatory`` (raises
        :class:`aiormq.exceptions.PublishError` for a returned message) and a per-message TTL.
        """
        properties = spec.Basic.Properties(
            delivery_mode=self._properties.delivery_mode,
            expiration=None if expiration is None else str(int(expiration * 1000)),
            headers=headers,
        )
        target = f"exchange {exchange!r}" if exchange else f"queue {routing_key!r}"
        while True:
            session = await self._wait_session()
            try:
                channel = await session.amqp.channel(publisher_confirms=True)
                try:
                    confirm = await channel.basic_publish(
                        body,
                        exchange=exchange,
                        routing_key=routing_key,
                        mandatory=mandatory,
                        properties=properties,
                    )
                finally:
                    if not channel.is_closed:
                        await channel.close()
            except aiormq.exceptions.PublishError:
                raise
            except Exception as exc:
                if not session.alive:
                    continue  # the connection dropped: publish again on the next one
                raise TransportError(
                    f"publish to {target} refused by {self.address.redacted()}: {refusal(exc)}"
                ) from exc
            if isinstance(confirm, spec.Basic.Nack):
                raise TransportError(
                    f"publish to {target} on {self.address.redacted()} failed: refused by the broker"
                )
            return

    async def _passive(
        self, name: str, what: str
    ) -> spec.Queue.DeclareOk | spec.Exchange.DeclareOk | None:
        """A passive declare of queue or exchange ``name``, on a channel it may close (404):
        the broker's answer, or ``None`` when there is no such thing."""
        session = await self._wait_session()
        channel = await session.amqp.channel(publisher_confirms=False)
        try:
            if what == "queue":
                return await channel.queue_declare(name, passive=True)
            return await channel.exchange_declare(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        finally:
            if not channel.is_closed:
                await channel.close()

    async def _exists(self, name: str, what: str) -> bool:
        return await self._passive(name, what) is not None

    async def queue_depth(self, name: str) -> QueueDepth | None:
        """A passive declare: RabbitMQ answers with the ready messages and consumers of the
        queue, no management plugin needed."""
        session = self._session
        if not self._running or session is None or not session.alive:
            return None
        try:
            if self._probe is None or self._probe[0] is not session or self._probe[1].is_closed:
                self._probe = (session, await session.amqp.channel(publisher_confirms=False))
            ok = await self._probe[1].queue_declare(name, passive=True)
        except (aiormq.exceptions.AMQPError, ConnectionError, TimeoutError) as exc:
            log.debug("no depth for queue %r: %s", name, describe(exc))
            self._probe = None
            return None
        return QueueDepth(int(ok.message_count or 0), int(ok.consumer_count or 0))

    async def _missing(self, name: str, *kinds: str) -> str:
        """``queue 'x.in' does not exist on ...; did you mean 'x.IN'?`` (names are case-sensitive)."""
        what = " or ".join(kinds)
        message = f"{what} {name!r} does not exist on {self.address.redacted()}"
        for variant in _case_variants(name):
            for kind in kinds:
                if await self._exists(variant, kind):
                    return f"{message}; did you mean {variant!r}? (names are case-sensitive)"
        return message

    async def check_queue(self, name: str) -> None:
        """An inport is a queue and an exchange, an outport an exchange: either will do."""
        if not await self._exists(name, "exchange") and not await self._exists(name, "queue"):
            raise TransportError(await self._missing(name, "queue", "exchange"))

    async def tap(self, name: str, handler: MessageHandler) -> str:
        """The queue ``name`` if there is one (taking its messages, as the original's dump does);
        otherwise a private copy of what the exchange ``name`` (an outport) carries, in a queue
        that goes away with the connection."""
        if await self._exists(name, "queue"):
            await self.subscribe_to_queue(name, handler)
            return name
        if not await self._exists(name, "exchange"):
            raise TransportError(await self._missing(name, "queue", "exchange"))
        private = f".msgflo-tap-{uuid.uuid4()}"
        await self._topology.declare(
            declare_queue(private, durable=False, exclusive=True),
            f"declaring a queue to read {name!r}",
            key=("queue", private),
        )
        await self._topology.declare(
            bind_queue(private, name), f"binding to {name!r}", key=("qbind", private, name)
        )
        await self._consume(private, self._deliver_to(name, handler), no_ack=False)
        return private

    async def _publish(self, exchange: str, routing_key: str, body: bytes) -> None:
        while (
            self._running
            and self._unconfirmed
            and (
                len(self._unconfirmed) >= MAX_UNCONFIRMED
                or self._unconfirmed_bytes + len(body) > MAX_UNCONFIRMED_BYTES
            )
        ):
            self._room.clear()
            await self._room.wait()
        if not self._running:
            raise TransportError(f"not connected to {self.address.redacted()}")
        self._seq += 1
        pub = Publish(self._seq, exchange, routing_key, body)
        self._unconfirmed[pub.seq] = pub
        self._unconfirmed_bytes += len(body)
        self._drained.clear()
        session = self._session
        if session is not None and session.alive:
            session.publish(pub)
            self._end_turn_soon()
        # Otherwise the next session publishes it, with everything else still unconfirmed.

    def _on_confirm(self, session: Session, tag: int, multiple: bool, ack: bool) -> None:
        inflight = session.inflight
        if multiple:
            while inflight and next(iter(inflight)) <= tag:
                self._confirmed(inflight.popitem(last=False)[1], ack)
        else:
            pub = inflight.pop(tag, None)
            if pub is not None:
                self._confirmed(pub, ack)
        if self._settle_queue:
            self._end_turn_soon()

    def _confirmed(self, pub: Publish, ack: bool) -> None:
        if self._unconfirmed.pop(pub.seq, None) is None:
            return
        if not ack:
            target = f"exchange {pub.exchange!r}" if pub.exchange else f"queue {pub.routing_key!r}"
            message = (
                f"publish to {target} on {self.address.redacted()} failed: refused by the broker"
            )
            log.error("%s", message)
            self._publish_errors.append(message)
        self._unconfirmed_bytes -= len(pub.body)
        self._room.set()
        if not self._unconfirmed:
            self._drained.set()

    async def flush(self) -> None:
        while self._running and self._unconfirmed:
            await self._drained.wait()
        errors, self._publish_errors = self._publish_errors, []
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise TransportError(errors[0] + more)

    def _end_turn_soon(self) -> None:
        """Write out once per event-loop turn what the turn produced (publishes, acks)."""
        if not self._turn_end_scheduled:
            self._turn_end_scheduled = True
            asyncio.get_running_loop().call_soon(self._end_turn)

    def _end_turn(self) -> None:
        self._turn_end_scheduled = False
        session = self._session
        if session is not None:
            self._release()
            session.flush()

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
        """Without ``reason`` the broker dead-letters (``x-death``), as msgflo-nodejs does; with
        one, the message is published to the exchange ``dead-<queue>`` with the reason in
        headers and confirmed before the delivery is acked (at least once, never lost)."""
        if message.settled:
            return
        if reason is None or requeue or not isinstance(message.token, Token):
            message.nacked = True
            self._settle(message, ack=False, requeue=requeue)
            return
        try:
            await self._dead_letter(message.queue, message.body, to_headers(reason))
        except TransportError as exc:
            log.error("%s; letting the broker dead-letter it without its reason", exc)
            message.nacked = True
            self._settle(message, ack=False)
            return
        message.nacked = True
        self._settle(message, ack=True)

    async def retry_later(self, message: Message, delay: float, attempt: int) -> bool:
        """Through a delay queue ``retry-<queue>-<ms>`` whose TTL sends its messages back to
        ``queue``: one queue per delay, because RabbitMQ expires messages only at a queue's
        head.  The delivery is acked once the broker has confirmed the delayed copy."""
        if message.settled or not isinstance(message.token, Token):
            return False
        ms = max(int(delay * 1000), 1)
        parking = f"{RETRY_QUEUE_PREFIX}{message.queue}-{ms}ms"
        arguments = {
            "x-message-ttl": ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": message.queue,
        }
        await self._topology.declare(
            declare_queue(parking, durable=True, arguments=arguments),
            f"declaring the retry queue {parking!r}",
            key=("queue", parking),
            exists_ok=True,
        )
        await self._publish_apart("", parking, message.body, headers={RETRY_HEADER: attempt})
        message.acked = True
        self._settle(message, ack=True)
        return True

    async def _dead_letter(self, queue: str, body: bytes, headers: dict[str, Any]) -> None:
        """Publish to ``dead-<queue>`` (declared as msgflo-nodejs declares it); a dead letter no
        queue takes is parked in a durable queue of that name instead of vanishing."""
        exchange = f"dead-{queue}"
        await self._topology.ensure_exchange(exchange)
        try:
            await self._publish_apart(exchange, "", body, mandatory=True, headers=headers)
            return
        except aiormq.exceptions.PublishError:
            pass
        log.warning(
            "no queue takes the dead letters of %r: parked in queue %r (see msgflo-replay)",
            queue,
            exchange,
        )
        await self._topology.declare(
            declare_queue(exchange, durable=True),
            f"declaring the parking queue {exchange!r}",
            key=("queue", exchange),
            exists_ok=True,
        )
        await self._topology.declare(
            bind_queue(exchange, exchange),
            f"binding the parking queue {exchange!r}",
            key=("qbind", exchange, exchange),
        )
        try:
            await self._publish_apart(exchange, "", body, mandatory=True, headers=headers)
        except aiormq.exceptions.PublishError:
            raise TransportError(f"dead letter of {queue!r} returned by the broker") from None

    def _settle(self, message: Message, *, ack: bool, requeue: bool = False) -> None:
        if isinstance(message.token, Token):
            self._settle_queue.append(_Settle(self._seq, message.token, ack, requeue))
            self._end_turn_soon()

    def _requeue(self, token: Token) -> None:
        self._settle_queue.append(_Settle(0, token, ack=False, requeue=True))
        self._end_turn_soon()

    def _release(self) -> None:
        """Queue every ack/nack whose preceding publishes are confirmed; acks coalesced."""
        session = self._session
        if session is None or not session.alive:
            return  # kept until the next connection, which drops them as stale
        oldest = next(iter(self._unconfirmed), None)
        queue = self._settle_queue
        acks: list[int] = []
        while queue and (oldest is None or queue[0].after < oldest):
            item = queue.popleft()
            if item.token.generation != session.generation:
                continue  # its channel is gone; the broker redelivers it
            if item.ack:
                acks.append(item.token.tag)
                continue
            self._send_acks(session, acks)
            acks = []
            session.unsettled.pop(item.token.tag, None)
            session.method(spec.Basic.Nack(delivery_tag=item.token.tag, requeue=item.requeue))
        self._send_acks(session, acks)

    @staticmethod
    def _send_acks(session: Session, tags: list[int]) -> None:
        """One ``multiple=True`` ack covers the oldest unsettled deliveries when all are acked."""
        if not tags:
            return
        pending = set(tags)
        unsettled = session.unsettled
        last = 0
        while unsettled and (first := next(iter(unsettled))) in pending:
            unsettled.popitem(last=False)
            pending.discard(first)
            last = first
        if last:
            session.method(spec.Basic.Ack(delivery_tag=last, multiple=True))
        for tag in sorted(pending):
            unsettled.pop(tag, None)
            session.method(spec.Basic.Ack(delivery_tag=tag))

    # -- consuming ------------------------------------------------------------------------------

    async def subscribe_to_queue(self, name: str, handler: MessageHandler) -> None:
        await self._consume(name, self._deliver_to(name, handler), no_ack=False)

    def _deliver_to(self, queue: str, handler: MessageHandler, *, ack: bool = False) -> _Process:
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

    async def _consume(self, queue: str, process: _Process, *, no_ack: bool) -> None:
        if queue in self._consumers:
            raise TransportError(f"already subscribed to queue {queue!r}")
        consumer = _Consumer(queue, no_ack, process)
        consumer.worker = asyncio.create_task(self._work(consumer))
        self._consumers[queue] = consumer
        session = await self._wait_session()
        try:
            await self._start_consumer(session, consumer)
        except TransportError:
            self._consumers.pop(queue, None)
            consumer.worker.cancel()
            raise
        except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
            # The connection dropped meanwhile; the next session starts the consumer.
            log.info("consuming %r deferred to the next connection: %s", queue, describe(exc))

    async def _start_consumer(self, session: Session, consumer: _Consumer) -> None:
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
                f"consuming queue {consumer.queue!r} refused by {self.address.redacted()}: "
                f"{refusal(exc)}"
            )
            log.error("%s", message)
            raise TransportError(message) from exc

    async def _work(self, consumer: _Consumer) -> None:
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

    async def subscribe_broadcast(self, channel: str, handler: MessageHandler) -> None:
        """A private, auto-deleted queue bound to the fanout exchange ``channel`` (declared
        durable, as outports are, so that any side may declare it first)."""
        await self._topology.ensure_exchange(channel)
        name = f".msgflo-broadcast-{uuid.uuid4()}"
        await self._topology.declare(
            declare_queue(name, durable=False, exclusive=True),
            f"declaring a private queue for {channel!r}",
            key=("queue", name),
        )
        await self._topology.declare(
            bind_queue(name, channel),
            f"binding a private queue to {channel!r}",
            key=("qbind", name, channel),
        )
        self._broadcasts[channel] = name
        await self._consume(name, self._deliver_to(channel, handler), no_ack=True)

    async def unsubscribe_broadcast(self, channel: str) -> None:
        """Cancels the consumer only: the private queue is exclusive and goes with the
        connection, so stopping never waits for a broker that may be away."""
        name = self._broadcasts.pop(channel, None)
        if name is None:
            return
        await self.unsubscribe_from_queue(name)
        self._topology.forget(lambda k: k[0] in ("queue", "qbind") and k[1] == name)

    async def unsubscribe_from_queue(self, name: str) -> None:
        consumer = self._consumers.pop(name, None)
        if consumer is None:
            return
        consumer.cancelled = True
        session = self._session
        if session is not None and session.alive and consumer.tag:
            with contextlib.suppress(aiormq.exceptions.AMQPError, ConnectionError):
                await session.data.channel.basic_cancel(consumer.tag)
        while not consumer.inbox.empty():
            item = consumer.inbox.get_nowait()
            if item is not None and not consumer.no_ack and item[1].delivery_tag is not None:
                self._requeue(Token(item[0], item[1].delivery_tag))
        consumer.inbox.put_nowait(None)
        if consumer.worker is not None:
            self._tasks.add(consumer.worker)
            consumer.worker.add_done_callback(self._tasks.discard)


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
        """Read through the management HTTP API (:mod:`msgflo.transport.amqp_management`)."""
        return bindings_from_links(await read_links(self.address))

    async def subscribe_data(self, binding: Binding, handler: DataHandler) -> None:
        if self._data_queue not in self._consumers:
            await self._topology.declare(
                declare_queue(self._data_queue, durable=False, exclusive=True),
                "declaring the data subscription queue",
                key=("queue", self._data_queue),
            )
            await self._consume(self._data_queue, self._dispatch_data, no_ack=True)
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
            await self._consume(
                DISCOVERY_QUEUE, self._deliver_to(DISCOVERY_QUEUE, handler, ack=True), no_ack=False
            )
