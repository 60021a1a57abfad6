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

URL: ``nats://user:pass@host:4222?jetstream=1&ack_wait=30&max_msgs=-1&fastpath=0`` (``tls://``
takes ``ca_certs``, ``certfile``, ``keyfile``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as Connection
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
)

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
from msgflo.transport.reason import unwrap, wrap

log = logging.getLogger(__name__)

DEFAULT_PORT = 4222
DEAD_PREFIX = "dead-"
RECONNECT_WAIT = 0.5
JS_API = "$JS.API"
PULL_BATCH = 512
"""Messages one pull request asks for; the next goes out when half of them have come."""
PULL_EXPIRES = 5.0
"""Seconds a pull request waits on the server before it expires (and is renewed)."""
ACK, NAK, TERM = b"", b"-NAK", b"+TERM"
"""Bodies published to a JetStream delivery's reply subject to settle it."""
RECHECK = 1.0
"""Seconds after which a subject found on no stream is looked up again (one may be made)."""
PUBLISH_WINDOW = 4096
"""JetStream publishes awaiting their acknowledgement; further sends wait for room."""

_INVALID_NAME = re.compile(r"[^A-Za-z0-9_-]")


def jetstream_name(subject: str) -> str:
    """A stream or consumer name for ``subject`` (those names may not hold ``.``, ``*``, ...)."""
    safe = _INVALID_NAME.sub("_", subject)
    if safe != subject:
        safe += "-" + hashlib.sha1(subject.encode()).hexdigest()[:8]
    return f"msgflo-{safe}"


PENDING_HEADER = "Nats-Pending-Messages"


def status_of(headers: bytes) -> tuple[str, str]:
    """The status code of raw NATS headers (``NATS/1.0 408 Request Timeout``), ``""`` for
    none, and the value of :data:`PENDING_HEADER` (how many messages of an expired pull
    request were not delivered), ``""`` when absent."""
    lines = headers.decode(errors="replace").split("\r\n")
    first = lines[0].split(maxsplit=2)
    status = first[1] if len(first) > 1 and first[1].isdigit() else ""
    pending = ""
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == PENDING_HEADER.lower():
            pending = value.strip()
    return status, pending


def _cause(exc: BaseException) -> str:
    """One readable line from whatever nats-py or the OS raised."""
    if isinstance(exc, nats.js.errors.APIError) and exc.description:
        return str(exc.description)
    if isinstance(exc, TimeoutError):
        return "no answer from the server"
    if isinstance(exc, OSError) and exc.errno:
        return f"{os.strerror(exc.errno).lower()} ({exc})"
    text = str(exc).removeprefix("nats: ").strip("'\" ") or type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return text[0].lower() + text[1:]


@dataclass(slots=True, eq=False)
class _Token:
    """What settling a delivery needs: where a nack sends it and, on JetStream, the subject
    that acks it."""

    reply: str
    dead: str
    jetstream: bool


@dataclass(slots=True, eq=False)
class _Routed:
    """A core subscription, its deliveries handed to an inbox of its own on the fast path."""

    client: NatsClient
    sub: Subscription
    inbox: _natspy.Inbox | None

    async def stop(self) -> None:
        if self.client._wire is not None:
            self.client._wire.unroute(self.sub)
        with contextlib.suppress(nats.errors.Error):
            await self.sub.unsubscribe()
        if self.inbox is not None:
            await self.inbox.close()


class _AckedPublisher:
    """JetStream publishes with their acknowledgements pipelined (one round trip would cap a
    sender at a few thousand messages a second), kept until acknowledged so that a
    reconnection sends again what the cut may have lost: at least once."""

    def __init__(self, nc: Connection, where: str, wire: _natspy.Wire | None) -> None:
        self._nc = nc
        self._wire = wire
        self._where = where
        self._inbox = f"{nc.new_inbox()}."
        self._ids = itertools.count()
        self._pending: dict[str, tuple[str, bytes, int, asyncio.Future[None] | None]] = {}
        self._room = asyncio.Semaphore(PUBLISH_WINDOW)
        self._idle = asyncio.Event()
        self._idle.set()
        self._epoch = 0
        self._refused: dict[str, str] = {}

    async def start(self) -> None:
        sub = await self._nc.subscribe(f"{self._inbox}*", cb=self._on_ack)
        if self._wire is not None:
            self._wire.route(sub, self._on_fast_ack)

    async def publish(
        self, subject: str, body: bytes, *, wait: bool
    ) -> asyncio.Future[None] | None:
        """Publish; with ``wait``, a future that settles with the acknowledgement (a refusal is
        logged either way, and raised by :meth:`drain`)."""
        await self._room.acquire()
        token = str(next(self._ids))
        done: asyncio.Future[None] | None = None
        if wait:
            done = asyncio.get_running_loop().create_future()
            done.add_done_callback(lambda f: f.cancelled() or f.exception())  # errors are logged
        self._pending[token] = (subject, body, self._epoch, done)
        self._idle.clear()
        await self._send(subject, body, self._inbox + token)
        return done

    async def _send(self, subject: str, body: bytes, reply: str) -> None:
        if self._wire is None or not self._wire.publish(subject, body, reply):
            await self._nc.publish(subject, body, reply=reply)

    def _on_fast_ack(
        self, subject: bytes, _reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        self._acked(subject.decode(), data, {"Status": status_of(headers)[0]} if headers else None)

    async def _on_ack(self, msg: Msg) -> None:
        self._acked(msg.subject, msg.data, msg.headers)

    def _acked(self, ack_subject: str, data: bytes, headers: dict[str, str] | None) -> None:
        entry = self._pending.pop(ack_subject[len(self._inbox) :], None)
        if entry is None:
            return
        self._room.release()
        subject, _, _, done = entry
        error = None
        if headers and headers.get("Status") == "503":
            error = "no stream takes this subject"
        elif not data.startswith(b'{"stream":') or b'"error"' in data:
            try:
                reply = orjson.loads(data)
                if isinstance(reply, dict) and "error" in reply:
                    error = str(reply["error"].get("description", reply["error"]))
            except orjson.JSONDecodeError:
                error = "unreadable acknowledgement"
        if error is not None:
            if self._refused.get(subject) != error:  # one line per cause, not per message
                log.error("%s: JetStream refused a message on %r: %s", self._where, subject, error)
            self._refused[subject] = error
        if done is not None and not done.done():  # done already: its waiter gave up
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(TransportError(f"{self._where}: {subject!r}: {error}"))
        if not self._pending:
            self._idle.set()

    def lost_connection(self) -> None:
        self._epoch += 1

    async def resend(self) -> None:
        """Send again what was published before the cut and is not acknowledged."""
        for token, (subject, body, epoch, _) in list(self._pending.items()):
            if epoch < self._epoch:
                await self._send(subject, body, self._inbox + token)

    async def drain(self) -> None:
        """Wait for every acknowledgement; raise once for messages refused since last time."""
        await self._idle.wait()
        refused, self._refused = self._refused, {}
        if refused:
            subject, error = next(iter(refused.items()))
            raise TransportError(f"{self._where}: JetStream refused {subject!r}: {error}")


class NatsClient(Client):
    scheme = "nats"
    supports_attach = True

    def __init__(self, address: Address, *, connect_timeout: float = 30.0) -> None:
        super().__init__(address, connect_timeout=connect_timeout)
        if address.scheme not in ("nats", "tls"):
            raise TransportError(f"{address.redacted()}: not a nats:// or tls:// URL")
        self.jetstream = address.int_option("jetstream", 0) != 0
        self.counts_queues = self.jetstream
        self._ack_wait = float(address.int_option("ack_wait", 30))
        self._max_msgs = address.int_option("max_msgs", -1)
        self._fastpath = FastPath(address.options, "NATS")
        self._wire: _natspy.Wire | None = None
        self._nc: Connection | None = None
        self._js: JetStreamContext | None = None
        self._publisher: _AckedPublisher | None = None
        self._subs: dict[tuple[str, str], _Routed | _Puller] = {}
        self._pullers: set[_Puller] = set()
        self._broadcasts: dict[str, Subscription] = {}
        self._streams: dict[str, str | None] = {}
        self._missed: dict[str, float] = {}
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

    def _tls(self) -> ssl.SSLContext | None:
        if self.address.scheme != "tls":
            return None
        opts = self.address.options
        context = ssl.create_default_context(cafile=opts.get("ca_certs"))
        if opts.get("certfile"):
            context.load_cert_chain(opts["certfile"], opts.get("keyfile"))
        return context

    async def connect(self) -> None:
        """Connect, or fail at the first refusal: nats-py alone would retry a wrong password
        or an absent server until the timeout, and then say only that time ran out."""
        if self._nc is not None:
            return
        where = self.address.redacted()
        loop = asyncio.get_running_loop()
        first_error: asyncio.Future[BaseException] = loop.create_future()

        async def on_error(exc: Exception) -> None:
            if not first_error.done():
                first_error.set_result(exc)
            elif self._nc is not None:
                log.warning("%s: %s", where, _cause(exc))

        nc = Connection()
        opening = loop.create_task(
            nc.connect(
                servers=[
                    f"{self.address.scheme}://{self.address.host or '127.0.0.1'}:"
                    f"{self.address.port or DEFAULT_PORT}"
                ],
                user=self.address.username,
                password=self.address.password,
                tls=self._tls(),
                connect_timeout=max(1, int(self.connect_timeout)),
                reconnect_time_wait=RECONNECT_WAIT,  # type: ignore[arg-type]
                max_reconnect_attempts=-1,
                error_cb=on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                name="msgflo",
            )
        )
        try:
            waiting: list[asyncio.Future[Any]] = [opening, first_error]
            done, _ = await asyncio.wait(
                waiting, timeout=self.connect_timeout, return_when="FIRST_COMPLETED"
            )
            if opening in done:
                opening.result()
            else:
                cause = first_error.result() if first_error in done else TimeoutError()
                raise TransportError(f"cannot connect to {where}: {_cause(cause)}")
        except (nats.errors.Error, OSError, ssl.SSLError) as exc:
            raise TransportError(f"cannot connect to {where}: {_cause(exc)}") from exc
        finally:
            if not opening.done() or opening.exception() is not None:
                opening.cancel()
                with contextlib.suppress(BaseException):
                    await nc.close()
        if not first_error.done():
            first_error.set_result(ConnectionError("connected"))
        self._nc = nc
        if self._fastpath.check(lambda: _natspy.unavailable(nc)):
            self._wire = _natspy.Wire(nc)
        if self.jetstream:
            self._js = nc.jetstream()
            self._publisher = _AckedPublisher(nc, where, self._wire)
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

    # queues and streams -------------------------------------------------------------------

    async def create_queue(self, kind: QueueKind, name: str, *, persistent: bool = True) -> None:
        if self.jetstream:
            retention = RetentionPolicy.WORK_QUEUE if kind is QueueKind.IN else None
            await self._ensure_stream(name, retention, persistent)

    async def _ensure_stream(
        self, subject: str, retention: RetentionPolicy | None, persistent: bool = True
    ) -> str:
        """The stream that captures ``subject``: an existing one, or one made for it."""
        assert self._js is not None
        known = self._streams.get(subject)
        if known:
            return known
        name = jetstream_name(subject)
        try:
            await self._js.add_stream(
                name=name,
                subjects=[subject],
                retention=retention or RetentionPolicy.INTEREST,
                storage=StorageType.FILE if persistent else StorageType.MEMORY,
                max_msgs=self._max_msgs,
                discard=DiscardPolicy.NEW,
            )
        except nats.js.errors.BadRequestError as exc:  # exists, perhaps with another config
            found = await self._stream_of(subject, refresh=True)
            if found is None:
                raise TransportError(
                    f"{self.address.redacted()}: cannot create stream for {subject!r}: "
                    f"{_cause(exc)}"
                ) from exc
            return found
        except (nats.errors.Error, TimeoutError) as exc:
            raise TransportError(
                f"{self.address.redacted()}: cannot create stream for {subject!r}: {_cause(exc)}"
            ) from exc
        self._streams[subject] = name
        return name

    async def queue_depth(self, name: str) -> QueueDepth | None:
        """On JetStream, the messages the queue's stream still holds (work-queue retention: not
        yet acked, so deliveries in progress count too); core NATS keeps no queue."""
        if self._js is None:
            return None
        try:
            stream = await self._stream_of(name)
            if stream is None:
                return None
            state = (await self._js.stream_info(stream)).state
        except (TransportError, nats.errors.Error, TimeoutError) as exc:
            log.debug("no depth for %r: %s", name, exc)
            return None
        return QueueDepth(int(state.messages), state.consumer_count)

    async def _stream_of(self, subject: str, *, refresh: bool = False) -> str | None:
        """The stream capturing ``subject``, or ``None`` when it travels on core NATS."""
        if self._js is None:
            return None
        if not refresh and subject in self._streams:
            known = self._streams[subject]
            if known is not None or time.monotonic() - self._missed.get(subject, 0) < RECHECK:
                return known
        try:
            found: str | None = await self._js.find_stream_name_by_subject(subject)
        except nats.js.errors.NotFoundError:
            found = None
        except (nats.errors.Error, TimeoutError) as exc:
            raise TransportError(
                f"{self.address.redacted()}: cannot look up the stream of {subject!r}: "
                f"{_cause(exc)}"
            ) from exc
        self._streams[subject] = found
        if found is None:
            self._missed[subject] = time.monotonic()
        return found

    async def remove_queue(self, kind: QueueKind, name: str) -> None:
        stream = await self._stream_of(name)
        if stream is not None and stream == jetstream_name(name):
            assert self._js is not None
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self._js.delete_stream(stream)
        self._streams.pop(name, None)

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
            if self._publisher is not None and await self._stream_of(subject):
                return await self._publisher.publish(subject, body, wait=wait)
            if self._wire is None or not self._wire.publish(subject, body):
                await nc.publish(subject, body)
        except nats.errors.Error as exc:
            raise TransportError(
                f"{self.address.redacted()}: cannot publish to {subject!r}: {_cause(exc)}"
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
        stream = await self._stream_of(name)
        if stream is None:
            fast = _Token("", dead, False)  # all that settling a core delivery needs

            async def on_core(msg: Msg) -> None:
                await self._deliver(name, msg.data, fast, handler)

            async def on_fast(_reply: bytes, body: bytes, _headers: bytes | None) -> None:
                await self._deliver(name, body, fast, handler)

            inbox = _natspy.Inbox(on_fast, f"{self.address.redacted()} {name}")
            sub, routed = await self._subscribe(name, on_core, group, inbox.push)
            if not routed:
                await inbox.close()
            self._subs[(name, group)] = _Routed(self, sub, inbox if routed else None)
            return

        async def on_delivery(reply: str, body: bytes) -> None:
            await self._deliver(name, body, _Token(reply, dead, True), handler)

        puller = _Puller(self, stream, jetstream_name(group), on_delivery)
        await puller.start(name, policy)
        self._subs[(name, group)] = puller

    async def _deliver(
        self, name: str, body: bytes, token: _Token, handler: MessageHandler
    ) -> None:
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

    def _core(self, subject: str, body: bytes) -> Awaitable[None] | None:
        """Publish on core NATS: ``None`` when the fast path took it, else what to await."""
        if self._wire is not None and self._wire.publish(subject, body):
            return None
        return self._connection().publish(subject, body)

    async def _settle_jetstream(self, token: _Token, body: bytes) -> None:
        sending = self._core(token.reply, body)
        if sending is not None:
            with contextlib.suppress(nats.errors.Error):  # unsettled: the server redelivers
                await sending

    async def ack_message(self, message: Message) -> None:
        if message.settled:
            return
        message.acked = True
        token = message.token
        if isinstance(token, _Token) and token.jetstream:
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
        if not isinstance(token, _Token):
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


class _Puller:
    """A durable pull consumer kept fed.  Pull requests go out before the last is used up (a
    request per batch would stall the consumer for a round trip each time); deliveries come
    to an inbox subject of this puller's own, routed to the fast path where it runs.  The
    server's status messages (a request expired, with how many of its messages it did not
    deliver) keep the count of messages asked for and not yet come."""

    def __init__(
        self,
        client: NatsClient,
        stream: str,
        durable: str,
        deliver: Callable[[str, bytes], Awaitable[None]],
    ) -> None:
        self._client = client
        self._stream = stream
        self._durable = durable
        self._next = f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._deliver = deliver
        self._request = orjson.dumps({"batch": PULL_BATCH, "expires": int(PULL_EXPIRES * 1e9)})
        self._inbox_subject = ""
        self._asked = 0
        self._heard = time.monotonic()
        self._sub: Subscription | None = None
        self._fast: _natspy.Inbox | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self, subject: str, policy: DeliverPolicy) -> None:
        """Make the durable consumer of ``subject`` unless it exists, then start pulling."""
        client = self._client
        assert client._js is not None
        config = ConsumerConfig(
            name=self._durable,
            durable_name=self._durable,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=client._ack_wait,
            deliver_policy=policy,
            max_ack_pending=PULL_BATCH * 4,
        )
        try:
            try:
                await client._js.consumer_info(self._stream, self._durable)
            except nats.js.errors.NotFoundError:
                await client._js.add_consumer(self._stream, config=config)
        except (nats.errors.Error, TimeoutError) as exc:
            raise TransportError(
                f"{client.address.redacted()}: cannot consume {subject!r} from stream "
                f"{self._stream}: {_cause(exc)}"
            ) from exc
        self._inbox_subject = client._connection().new_inbox()
        self._fast = _natspy.Inbox(self._on_fast, self._next)
        self._sub, routed = await client._subscribe(
            self._inbox_subject, self._on_msg, route=self._fast.push
        )
        if not routed:
            await self._fast.close()
            self._fast = None
        client._pullers.add(self)
        await self.renew()
        self._watch = asyncio.get_running_loop().create_task(self._keep_asking())

    async def renew(self) -> None:
        """Forget what was asked (after a reconnection the server may have dropped it) and ask."""
        self._asked = 0
        await self._ask()

    async def _ask(self) -> None:
        if self._asked > PULL_BATCH // 2:
            return
        self._asked += PULL_BATCH
        wire = self._client._wire
        if wire is None or not wire.publish(self._next, self._request, self._inbox_subject):
            with contextlib.suppress(nats.errors.Error):  # a cut: renewed on reconnection
                await self._client._connection().publish(
                    self._next, self._request, reply=self._inbox_subject
                )

    async def _keep_asking(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if time.monotonic() - self._heard > 2 * PULL_EXPIRES:
                self._asked = 0  # nothing came, not even an expiry: the requests are lost
                self._heard = time.monotonic()
            await self._ask()

    async def _on_fast(self, reply: bytes, body: bytes, headers: bytes | None) -> None:
        status, undelivered = status_of(headers) if headers else ("", "")
        if status:
            await self._status(status, undelivered)
        else:
            await self._data(reply.decode(), body)

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status", "")
        if status:
            await self._status(status, headers.get(PENDING_HEADER, ""))
        else:
            await self._data(msg.reply, msg.data)

    async def _status(self, status: str, undelivered: str) -> None:
        self._heard = time.monotonic()
        if status == "408" and undelivered.isdigit():
            self._asked = max(0, self._asked - int(undelivered))
        elif status != "100":  # not an expiry or a heartbeat: ask afresh a second later
            log.debug("pull %s: status %s", self._next, status)
            self._asked = 0
            return
        await self._ask()

    async def _data(self, reply: str, body: bytes) -> None:
        self._heard = time.monotonic()
        self._asked -= 1
        if self._asked <= PULL_BATCH // 2:
            await self._ask()
        await self._deliver(reply, body)

    async def stop(self) -> None:
        self._client._pullers.discard(self)
        if self._watch is not None:
            self._watch.cancel()
        wire = self._client._wire
        if self._sub is not None:
            if wire is not None:
                wire.unroute(self._sub)
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
        if self._fast is not None:
            await self._fast.close()


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
            await self._ensure_stream(src, None)

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
