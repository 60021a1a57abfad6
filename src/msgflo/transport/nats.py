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

URL: ``nats://user:pass@host:4222?jetstream=1&ack_wait=30&max_msgs=-1`` (``tls://`` takes
``ca_certs``, ``certfile``, ``keyfile``).
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
from collections.abc import Mapping
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
BROADCAST = ""
"""The group key of broadcast subscriptions in ``_subs`` (queue groups are never empty)."""
DEAD_PREFIX = "dead-"
RECONNECT_WAIT = 0.5
FETCH_BATCH = 256
FETCH_WAIT = 1.0
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
    """What settling a delivery needs: the NATS message and where a nack sends it."""

    msg: Msg
    dead: str
    jetstream: bool


class _AckedPublisher:
    """JetStream publishes with their acknowledgements pipelined (one round trip would cap a
    sender at a few thousand messages a second), kept until acknowledged so that a
    reconnection sends again what the cut may have lost: at least once."""

    def __init__(self, nc: Connection, where: str) -> None:
        self._nc = nc
        self._where = where
        self._inbox = f"{nc.new_inbox()}."
        self._ids = itertools.count()
        self._pending: dict[str, tuple[str, bytes, int, asyncio.Future[None]]] = {}
        self._room = asyncio.Semaphore(PUBLISH_WINDOW)
        self._idle = asyncio.Event()
        self._idle.set()
        self._epoch = 0
        self._refused: dict[str, str] = {}

    async def start(self) -> None:
        await self._nc.subscribe(f"{self._inbox}*", cb=self._on_ack)

    async def publish(self, subject: str, body: bytes) -> asyncio.Future[None]:
        await self._room.acquire()
        token = str(next(self._ids))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(lambda f: f.cancelled() or f.exception())  # errors are logged
        self._pending[token] = (subject, body, self._epoch, done)
        self._idle.clear()
        await self._nc.publish(subject, body, reply=self._inbox + token)
        return done

    async def _on_ack(self, msg: Msg) -> None:
        entry = self._pending.pop(msg.subject[len(self._inbox) :], None)
        if entry is None:
            return
        self._room.release()
        subject, _, _, done = entry
        error = None
        if msg.headers and msg.headers.get("Status") == "503":
            error = "no stream takes this subject"
        else:
            try:
                reply = orjson.loads(msg.data)
                if isinstance(reply, dict) and "error" in reply:
                    error = str(reply["error"].get("description", reply["error"]))
            except orjson.JSONDecodeError:
                error = "unreadable acknowledgement"
        if error is None:
            done.set_result(None)
        else:
            if self._refused.get(subject) != error:  # one line per cause, not per message
                log.error("%s: JetStream refused a message on %r: %s", self._where, subject, error)
            self._refused[subject] = error
            done.set_exception(TransportError(f"{self._where}: {subject!r}: {error}"))
        if not self._pending:
            self._idle.set()

    def lost_connection(self) -> None:
        self._epoch += 1

    async def resend(self) -> None:
        """Send again what was published before the cut and is not acknowledged."""
        for token, (subject, body, epoch, _) in list(self._pending.items()):
            if epoch < self._epoch:
                await self._nc.publish(subject, body, reply=self._inbox + token)

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
        self._nc: Connection | None = None
        self._js: JetStreamContext | None = None
        self._publisher: _AckedPublisher | None = None
        self._subs: dict[tuple[str, str], Subscription | asyncio.Task[None]] = {}
        self._streams: dict[str, str | None] = {}
        self._missed: dict[str, float] = {}
        self._online = asyncio.Event()
        self._offline = asyncio.Event()

    # connection -------------------------------------------------------------------------

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
        if self.jetstream:
            self._js = nc.jetstream()
            self._publisher = _AckedPublisher(nc, where)
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
        try:
            await self._notify_reconnected()
        except Exception:
            log.exception("reconnect listener failed")

    async def _subscribe(self, subject: str, cb: Any, group: str = "") -> Subscription:
        """Subscribe and wait until the server has the subscription, so that a message sent
        right after, on another connection, is not missed."""
        nc = self._connection()
        sub = await nc.subscribe(subject, queue=group, cb=cb)
        with contextlib.suppress(nats.errors.Error, TimeoutError):  # while away: restored later
            await nc.flush(timeout=self.connect_timeout)  # type: ignore[arg-type]
        return sub

    def _connection(self) -> Connection:
        if self._nc is None:
            raise TransportError(f"{self.address.redacted()}: not connected")
        return self._nc

    async def disconnect(self) -> None:
        nc, self._nc = self._nc, None
        if nc is None:
            return
        for key in list(self._subs):
            await self._stop(key)
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
        await self._publish(name, body)

    async def _publish(self, subject: str, body: bytes) -> asyncio.Future[None] | None:
        """Publish; on JetStream the future settles with the server's acknowledgement."""
        nc = self._connection()
        try:
            if self._publisher is not None and await self._stream_of(subject):
                return await self._publisher.publish(subject, body)
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
        """A core subscription without a queue group: every subscriber hears every message,
        and nothing is kept for one that is away (a broadcast channel is never a stream)."""

        async def on_message(msg: Msg) -> None:
            try:
                await handler(Message.from_body(channel, msg.data))
            except Exception:
                log.exception("handler of broadcast channel %s failed", channel)

        await self._stop((channel, BROADCAST))
        self._subs[(channel, BROADCAST)] = await self._subscribe(channel, on_message)

    async def unsubscribe_broadcast(self, channel: str) -> None:
        await self._stop((channel, BROADCAST))

    async def _consume(
        self, name: str, group: str, handler: MessageHandler, policy: DeliverPolicy
    ) -> None:
        """Consume ``name`` in queue group ``group``: a core queue subscription, or on JetStream
        a durable pull consumer named after ``group`` on the stream of ``name``."""
        await self._stop((name, group))
        dead = DEAD_PREFIX + group
        stream = await self._stream_of(name)
        if stream is None:

            async def on_core(msg: Msg) -> None:
                await self._deliver(name, _Token(msg, dead, False), handler)

            self._subs[(name, group)] = await self._subscribe(name, on_core, group)
            return
        assert self._js is not None
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            deliver_policy=policy,
            max_ack_pending=FETCH_BATCH * 8,
        )
        try:
            pull = await self._js.pull_subscribe(
                name, durable=jetstream_name(group), stream=stream, config=config
            )
        except (nats.errors.Error, TimeoutError) as exc:
            raise TransportError(
                f"{self.address.redacted()}: cannot consume {name!r} from stream {stream}: "
                f"{_cause(exc)}"
            ) from exc
        task = asyncio.get_running_loop().create_task(self._pull(name, dead, pull, handler))
        self._subs[(name, group)] = task

    async def _pull(
        self, name: str, dead: str, pull: JetStreamContext.PullSubscription, handler: MessageHandler
    ) -> None:
        try:
            while True:
                try:
                    batch = await pull.fetch(FETCH_BATCH, timeout=FETCH_WAIT)
                except TimeoutError:
                    continue
                except nats.errors.Error as exc:  # a cut: nats-py reconnects, we ask again
                    log.debug("fetch from %r failed: %s", name, _cause(exc))
                    await asyncio.sleep(RECONNECT_WAIT)
                    continue
                for msg in batch:
                    await self._deliver(name, _Token(msg, dead, True), handler)
        finally:
            with contextlib.suppress(Exception):
                await pull.unsubscribe()

    async def _deliver(self, name: str, token: _Token, handler: MessageHandler) -> None:
        message = Message.from_envelope(name, token.msg.data, token)
        try:
            await handler(message)
        except Exception:
            log.exception("handler for queue %r failed", name)
            if not message.settled:
                await self.nack_message(message)

    async def _stop(self, key: tuple[str, str]) -> None:
        sub = self._subs.pop(key, None)
        if isinstance(sub, asyncio.Task):
            sub.cancel()
            if sub is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError):
                    await sub
        elif sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def ack_message(self, message: Message) -> None:
        if message.settled:
            return
        message.acked = True
        token = message.token
        if isinstance(token, _Token) and token.jetstream:
            with contextlib.suppress(nats.errors.Error):  # unacked: the server redelivers
                await token.msg.ack()

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
            with contextlib.suppress(nats.errors.Error):
                await token.msg.nak()
            return
        body = message.body if reason is None else wrap(message.body, reason)
        log.warning(
            "dead letter of %r published to subject %r (dropped unless a DEAD_ edge, a "
            "subscriber or a stream takes it)",
            message.queue,
            token.dead,
        )
        done = await self._publish(token.dead, body)
        if token.jetstream:
            if done is not None:
                with contextlib.suppress(TransportError):
                    await done
            with contextlib.suppress(nats.errors.Error):
                await token.msg.term()


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
            token = message.token
            done = await self._publish(
                tgt, token.msg.data if isinstance(token, _Token) else message.body
            )
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

        self._observers[(binding.src, handler)] = await self._subscribe(binding.src, observe)

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
