"""The transport contract: what participants, tools and the coordinator may ask of a broker.

The shape follows msgflo-nodejs' ``MessagingClient``/``MessageBroker`` so that the semantics of
every call (which queue or exchange is declared, where a send goes, what a binding means) can be
checked against the original, but it is asyncio all the way and typed.  Transports know nothing
of graphs: a queue is a name, a binding is a pair of names.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, cast
from urllib.parse import parse_qs, urlsplit

import orjson

from msgflo.errors import ConnectError
from msgflo.transport.envelope import DiscoveryMessage, DiscoveryPayload
from msgflo.transport.reason import unwrap

DISCOVERY_QUEUE = "fbp"
"""Queue (AMQP) or topic (MQTT) that carries discovery messages, as in every msgflo library."""


class TransportError(ConnectError):
    """A broker could not be reached or refused an operation; the message names URL and cause."""


class QueueKind(enum.StrEnum):
    """Which side of a queue a client is on, exactly as msgflo-nodejs names them on the wire API."""

    IN = "inqueue"
    OUT = "outqueue"


class BindingType(enum.StrEnum):
    PUBSUB = "pubsub"
    ROUNDROBIN = "roundrobin"


@dataclass(frozen=True, slots=True)
class Binding:
    """Connects the queue ``src`` (an outport) to ``tgt`` (an inport).

    ``roundrobin`` bindings may carry ``deadletter``: the queue that receives what ``tgt``'s
    consumers nack.  A round-robin binding may also come in halves as in the original
    (``src``/``tgt`` and ``tgt``/``deadletter`` with ``src`` empty).
    """

    src: str
    tgt: str
    type: BindingType = BindingType.PUBSUB
    deadletter: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"type": self.type.value, "src": self.src, "tgt": self.tgt}
        if self.deadletter:
            out["deadletter"] = self.deadletter
        return out


def encode(data: Any) -> bytes:
    """Bodies are UTF-8 JSON, as every msgflo library sends them."""
    return orjson.dumps(data)


def decode(body: bytes) -> Any:
    """JSON first; otherwise text, otherwise the raw bytes: garbage never raises."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return body


@dataclass(slots=True, eq=False)
class Message:
    """One delivery from a queue.

    ``data`` is the decoded payload (see :func:`decode`), ``body`` the bytes as they came.
    ``token`` is the transport's own handle for ack/nack (a delivery tag, a broker object); users
    never touch it.  ``json`` and ``buffer`` keep code written for msgflo-python working.
    """

    queue: str
    body: bytes
    data: Any
    token: Any = None
    port: str | None = None
    acked: bool = False
    nacked: bool = False
    reason: dict[str, str | int] | None = None
    """Why the message was dead-lettered, when it is a dead letter (see
    :mod:`msgflo.transport.reason`); ``data`` is then the payload that failed, unchanged."""
    attempt: int = 1
    """Which try at processing this is: above 1 for a message sent back by a retry policy."""
    redelivered: bool = False
    """The broker handed it out before without a settlement (the consumer went away)."""

    @classmethod
    def from_body(cls, queue: str, body: bytes, token: Any = None) -> Message:
        return cls(queue=queue, body=body, data=decode(body), token=token)

    @classmethod
    def from_envelope(cls, queue: str, body: bytes, token: Any = None) -> Message:
        """For brokers that carry a dead letter's reason in an envelope (MQTT, NATS)."""
        original, reason = unwrap(body)
        return cls(queue=queue, body=original, data=decode(original), token=token, reason=reason)

    @classmethod
    def from_data(cls, queue: str, data: Any, port: str | None = None) -> Message:
        """A message that never crossed a broker (command-line IIPs, direct calls)."""
        return cls(queue=queue, body=encode(data), data=data, port=port)

    @property
    def json(self) -> Any:
        return self.data

    @property
    def buffer(self) -> bytes:
        return self.body

    @property
    def settled(self) -> bool:
        return self.acked or self.nacked


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """What a broker says of one queue: messages waiting (not yet delivered) and consumers;
    ``None`` where it cannot tell."""

    messages: int
    consumers: int | None = None


MessageHandler = Callable[[Message], Awaitable[None]]
DataHandler = Callable[[Binding, Any], Awaitable[None]]
ReconnectListener = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Address:
    """A parsed broker URL: the scheme picks the transport, the query carries its options."""

    url: str
    scheme: str
    host: str
    port: int | None
    username: str | None
    password: str | None
    path: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> Address:
        parts = urlsplit(url)
        if not parts.scheme:
            raise TransportError(f"broker URL {url!r} has no scheme (e.g. mqtt://127.0.0.1:1883)")
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            port = parts.port
        except ValueError as exc:
            raise TransportError(f"broker URL {url!r}: {exc}") from exc
        return cls(
            url=url,
            scheme=parts.scheme.lower(),
            host=parts.hostname or "",
            port=port,
            username=parts.username,
            password=parts.password,
            path=parts.path,
            options=options,
        )

    def int_option(self, name: str, default: int) -> int:
        raw = self.options.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError as exc:
            raise TransportError(
                f"broker URL {self.url!r}: option {name}={raw!r} is not a whole number"
            ) from exc

    def redacted(self) -> str:
        """The URL without its password, for log lines and errors."""
        if not self.password:
            return self.url
        return self.url.replace(f":{self.password}@", ":***@", 1)


class Client(ABC):
    """What a participant or a tool needs: declare, send, consume, ack, announce.

    To write a transport, subclass this (and :class:`Broker` for the coordinator's side), set
    ``scheme`` and register the classes in :mod:`msgflo.transport` (see docs/transports.md).
    Every method is a coroutine run on one asyncio loop; none may block it.

    After a lost connection an implementation reconnects by itself (with backoff: see
    :func:`msgflo.transport.reconnect.supervise`), re-declares what was declared, re-subscribes,
    and then calls every listener added with :meth:`on_reconnect` so that participants announce
    themselves again.  Sends made while the connection is down are kept (bounded) and sent after
    the reconnection, or the send waits; they are never dropped silently.
    """

    scheme: ClassVar[str]

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        self.address = address
        self.connect_timeout = connect_timeout
        self._reconnect_listeners: list[ReconnectListener] = []

    @property
    def url(self) -> str:
        """The broker URL as given (with its password: use ``address.redacted()`` in logs)."""
        return self.address.url

    def on_reconnect(self, listener: ReconnectListener) -> None:
        """Call ``listener`` after every reconnection, once subscriptions are restored
        (participants announce themselves again from here)."""
        self._reconnect_listeners.append(listener)

    async def _notify_reconnected(self) -> None:
        """Run the :meth:`on_reconnect` listeners in order; a transport calls it once it is back."""
        for listener in list(self._reconnect_listeners):
            await listener()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    @abstractmethod
    async def connect(self) -> None:
        """Connect, or raise :class:`TransportError` within ``connect_timeout`` seconds.

        The error is one line naming the redacted URL and the cause, raised ``from`` the
        library's exception.  Calling it on a connected client does nothing.  After it returns,
        the client keeps itself connected until :meth:`disconnect`.
        """

    @abstractmethod
    async def disconnect(self) -> None:
        """Send what is still buffered (waiting a bounded time for confirms), stop consumers and
        the reconnect loop, close the connection; leaves no task behind.  Idempotent."""

    @abstractmethod
    async def create_queue(self, kind: QueueKind, name: str, *, persistent: bool = True) -> None:
        """Declare an inqueue (something we consume) or an outqueue (something we publish to).

        Declarations must be exactly the original's for the same broker (names, flags,
        arguments), so that a Node peer declaring the same name is not refused.  Idempotent;
        a transport without broker-side queues (MQTT) only records the name.  ``persistent``
        False asks for a queue that disappears with its last consumer.  A refusal raises
        :class:`TransportError` with the broker's reason.
        """

    @abstractmethod
    async def remove_queue(self, kind: QueueKind, name: str) -> None:
        """Delete what :meth:`create_queue` declared and stop re-declaring it after reconnects."""

    @abstractmethod
    async def send_raw(self, kind: QueueKind, name: str, body: bytes) -> None:
        """Publish bytes: to an outqueue through its exchange, to an inqueue directly.

        Returns once the message is handed to the transport (not necessarily confirmed: see
        :meth:`flush`); sends from one client arrive in the order they were made.  While the
        connection is down the message is kept and sent after the reconnection.
        """

    async def send_to(self, kind: QueueKind, name: str, data: Any) -> None:
        """:meth:`send_raw` of ``data`` encoded as the original encodes it (UTF-8 JSON)."""
        await self.send_raw(kind, name, encode(data))

    @abstractmethod
    async def subscribe_to_queue(self, name: str, handler: MessageHandler) -> None:
        """Consume ``name``; every delivery must end in :meth:`ack_message` or :meth:`nack_message`.

        ``handler`` is awaited for one message at a time, in delivery order; a handler that
        raises gets its message nacked and the consumer goes on.  Consumers of one queue in
        several clients share its messages (each goes to one of them).  A consumer the broker
        refuses (missing queue, access refused, exclusive to another connection) raises
        :class:`TransportError` naming the queue and the broker's reason; it is never dropped
        silently.  After a reconnection the subscription is restored without a new call.
        """

    @abstractmethod
    async def unsubscribe_from_queue(self, name: str) -> None:
        """Stop consuming ``name``; deliveries not yet handled go back to the queue (where the
        broker keeps one).  Unsubscribing from a queue not consumed does nothing."""

    @abstractmethod
    async def ack_message(self, message: Message) -> None:
        """Settle ``message`` as done: the broker may forget it.  A second settle does nothing.

        A transport with publisher confirms may hold the ack until every send made earlier on
        this client is confirmed, so that an input is settled only once its outputs are safe.
        """

    @abstractmethod
    async def nack_message(
        self,
        message: Message,
        *,
        requeue: bool = False,
        reason: Mapping[str, Any] | None = None,
    ) -> None:
        """Settle ``message`` as failed, or put it back in the queue with ``requeue``.

        A failed message goes to ``dead-<queue>`` (``message.queue``), where a round-robin
        binding's deadletter queue picks it up.  With ``reason`` it carries why (see
        :mod:`msgflo.transport.reason`): RabbitMQ and memory in headers, MQTT and NATS in an
        envelope.  Where nothing takes dead letters the fate is the transport's (see
        docs/deadletters.md), always with a log line; a reason never makes the nack fail."""

    async def retry_later(self, message: Message, delay: float, attempt: int) -> bool:
        """Bring ``message`` back to its queue after ``delay`` seconds as try ``attempt``,
        without holding the consumer, and settle this delivery; ``False`` where the broker
        cannot delay a message (the participant then waits in its own process)."""
        return False

    supports_attach: ClassVar[bool] = False
    """Whether a consumer may subscribe to a source queue itself (MQTT, which has no
    broker-side bindings): see :mod:`msgflo.control`."""

    dead_letters: ClassVar[bool] = True
    """Whether a nacked message goes to ``dead-<queue>`` of its inqueue, where
    :meth:`Broker.subscribe_data` on ``dead-<queue>`` sees it (every transport here does)."""

    async def attach(self, source: str, handler: MessageHandler, *, group: str) -> None:
        """Consume ``source`` as if it were bound to one of our queues; consumers that attach
        with the same ``group`` share its messages."""
        raise TransportError(f"{self.address.redacted()}: bindings are made by the broker")

    async def detach(self, source: str) -> None:
        """Undo :meth:`attach`."""
        raise TransportError(f"{self.address.redacted()}: bindings are made by the broker")

    async def subscribe_broadcast(self, channel: str, handler: MessageHandler) -> None:
        """Receive every message published to ``channel`` with ``send_raw(QueueKind.OUT, ...)``,
        beside every other subscriber (no sharing, nothing kept while not subscribed, nothing
        to ack).  Raises :class:`TransportError` where the transport offers no such channel."""
        raise TransportError(f"{self.address.redacted()}: no broadcast channels")

    async def unsubscribe_broadcast(self, channel: str) -> None:
        """Stop receiving ``channel``; a no-op when not subscribed."""

    async def flush(self) -> None:
        """Wait until everything sent so far is confirmed by the broker (where it confirms)."""

    async def send_checked(self, kind: QueueKind, name: str, body: bytes) -> None:
        """Send one message and wait until the broker has it; raise :class:`TransportError` where
        the broker can tell that no queue took it (AMQP).  An MQTT broker cannot tell: a publish
        to a topic nobody subscribes to is dropped without a word."""
        await self.send_raw(kind, name, body)
        await self.flush()

    def held(self, name: str) -> int | None:
        """Deliveries of the consumed queue ``name`` waiting inside this client for their
        handler; ``None`` where the transport does not know (a broker-side queue is the place
        to look there: :meth:`queue_depth`)."""
        return None

    counts_queues: bool = False
    """Whether :meth:`queue_depth` can answer on this broker at all (AMQP, memory, NATS
    JetStream): an autoscaler on a broker that cannot count gives up instead of waiting."""

    async def queue_depth(self, name: str) -> QueueDepth | None:
        """How many messages wait in the broker's queue ``name`` (delivered but unacked ones do
        not count); ``None`` when the broker keeps no such queue (MQTT, core NATS), does not
        know it, or cannot be asked now.  Never raises: observing must not take anything down."""
        return None

    async def tap(self, name: str, handler: MessageHandler) -> str:
        """Read what arrives at ``name`` and leave nothing behind on the broker once the client
        disconnects; returns the queue to :meth:`unsubscribe_from_queue` from."""
        await self.create_queue(QueueKind.IN, name)
        await self.subscribe_to_queue(name, handler)
        return name

    async def check_queue(self, name: str) -> None:
        """Raise :class:`TransportError` naming ``name`` where the broker can tell that nothing
        of that name exists (AMQP: neither a queue nor an exchange).  Does nothing where it
        cannot tell: an MQTT topic exists by being used."""

    async def register_participant(self, definition: Mapping[str, Any]) -> None:
        """Announce a participant on the discovery queue/topic, in the original's envelope
        (the definition's extra keys travel too; see :mod:`msgflo.transport.envelope`)."""
        envelope: DiscoveryMessage = {
            "protocol": "discovery",
            "command": "participant",
            "payload": cast(DiscoveryPayload, definition),
        }
        await self.send_discovery(encode(envelope))

    @abstractmethod
    async def send_discovery(self, body: bytes) -> None:
        """Publish an encoded discovery envelope where the original's coordinator reads it
        (queue/topic :data:`DISCOVERY_QUEUE`, declared as the original declares it)."""


class Broker(Client):
    """What the coordinator and the setup tools need on top of a client: bindings and observing."""

    bindings_outlive_clients: ClassVar[bool] = False
    """Whether a binding stays on the broker after the client that made it is gone (RabbitMQ),
    so that one made by an earlier run must be removed explicitly."""

    @abstractmethod
    async def add_binding(self, binding: Binding) -> None:
        """Route what is sent to ``binding.src`` to ``binding.tgt`` from now on (see
        :class:`Binding` for round-robin and deadletter halves).  Idempotent; restored after a
        reconnection.  Where the broker cannot bind (MQTT), this process forwards instead."""

    @abstractmethod
    async def remove_binding(self, binding: Binding) -> None:
        """Stop the routing :meth:`add_binding` made; removing an unknown binding does nothing."""

    @abstractmethod
    async def list_bindings(self) -> list[Binding]:
        """The bindings this broker object made (not the broker's whole state), in order."""

    async def announce_bindings(self, bindings: Sequence[Binding]) -> None:
        """Publish the bindings this binder realises (all of them, replacing what it announced
        before) where the broker cannot list bindings itself, so that other coordinators and
        ``msgflo-setup --check`` see them: MQTT keeps them in a retained record.  Brokers that
        hold real bindings (AMQP) need nothing and do nothing."""

    async def broker_bindings(self) -> list[Binding]:
        """Every binding on the broker, whoever made it (AMQP: from the management HTTP API;
        MQTT: from every binder's :meth:`announce_bindings` record).  Raises
        :class:`TransportError` where they cannot be read."""
        raise TransportError(f"{self.address.redacted()}: cannot list the broker's bindings")

    @abstractmethod
    async def subscribe_data(self, binding: Binding, handler: DataHandler) -> None:
        """Call ``handler(binding, data)`` for every message that passes ``binding.src``."""

    @abstractmethod
    async def unsubscribe_data(self, binding: Binding, handler: DataHandler) -> None:
        """Stop calling ``handler`` for ``binding``; other observers of the source stay."""

    @abstractmethod
    async def subscribe_participant_change(self, handler: MessageHandler) -> None:
        """Receive discovery messages; the handler gets them already decoded in ``data``."""
