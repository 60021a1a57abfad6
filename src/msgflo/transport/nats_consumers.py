"""Consuming NATS subjects: core subscriptions, JetStream pull consumers, and what settling
one of their deliveries takes.

A core subscription's deliveries go to an inbox of its own on the fast path (:class:`Routed`).
On JetStream each inport reads through a durable pull consumer (:class:`Puller`), kept fed
with pull requests; a delivery is settled by publishing :data:`ACK`, :data:`NAK` or
:data:`TERM` to its reply subject (:class:`Token`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as Connection
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from msgflo.transport import _natspy
from msgflo.transport.base import TransportError
from msgflo.transport.nats_connection import PENDING_HEADER, cause, status_of

log = logging.getLogger("msgflo.transport.nats")
"""One logger for the whole transport, whichever of its modules speaks."""

JS_API = "$JS.API"
PULL_BATCH = 512
"""Messages one pull request asks for; the next goes out when half of them have come."""
PULL_EXPIRES = 5.0
"""Seconds a pull request waits on the server before it expires (and is renewed)."""
ACK, NAK, TERM = b"", b"-NAK", b"+TERM"
"""Bodies published to a JetStream delivery's reply subject to settle it."""

Subscribe = Callable[[str, Any, str, _natspy.Route | None], Awaitable[tuple[Subscription, bool]]]
"""The client's subscribe: (subject, nats-py callback, queue group, fast-path route) to the
subscription and whether its deliveries go to the route."""


@dataclass(slots=True, eq=False)
class Token:
    """What settling a delivery needs: where a nack sends it and, on JetStream, the subject
    that acks it."""

    reply: str
    dead: str
    jetstream: bool


@dataclass(slots=True, eq=False)
class Routed:
    """A core subscription, its deliveries handed to an inbox of its own on the fast path."""

    wire: _natspy.Wire | None
    sub: Subscription
    inbox: _natspy.Inbox | None

    async def stop(self) -> None:
        if self.wire is not None:
            self.wire.unroute(self.sub)
        with contextlib.suppress(nats.errors.Error):
            await self.sub.unsubscribe()
        if self.inbox is not None:
            await self.inbox.close()


class Puller:
    """A durable pull consumer kept fed.  Pull requests go out before the last is used up (a
    request per batch would stall the consumer for a round trip each time); deliveries come
    to an inbox subject of this puller's own, routed to the fast path where it runs.  The
    server's status messages (a request expired, with how many of its messages it did not
    deliver) keep the count of messages asked for and not yet come."""

    def __init__(
        self,
        *,
        js: JetStreamContext,
        nc: Connection,
        wire: _natspy.Wire | None,
        subscribe: Subscribe,
        running: set[Puller],
        where: str,
        stream: str,
        durable: str,
        ack_wait: float,
        deliver: Callable[[str, bytes], Awaitable[None]],
    ) -> None:
        self._js = js
        self._nc = nc
        self._wire = wire
        self._subscribe = subscribe
        self._running = running
        self._where = where
        self._stream = stream
        self._durable = durable
        self._ack_wait = ack_wait
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
        config = ConsumerConfig(
            name=self._durable,
            durable_name=self._durable,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            deliver_policy=policy,
            max_ack_pending=PULL_BATCH * 4,
        )
        try:
            try:
                await self._js.consumer_info(self._stream, self._durable)
            except nats.js.errors.NotFoundError:
                await self._js.add_consumer(self._stream, config=config)
        except (nats.errors.Error, TimeoutError) as exc:
            raise TransportError(
                f"{self._where}: cannot consume {subject!r} from stream "
                f"{self._stream}: {cause(exc)}"
            ) from exc
        self._inbox_subject = self._nc.new_inbox()
        self._fast = _natspy.Inbox(self._on_fast, self._next)
        self._sub, routed = await self._subscribe(
            self._inbox_subject, self._on_msg, "", self._fast.push
        )
        if not routed:
            await self._fast.close()
            self._fast = None
        self._running.add(self)
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
        wire = self._wire
        if wire is None or not wire.publish(self._next, self._request, self._inbox_subject):
            with contextlib.suppress(nats.errors.Error):  # a cut: renewed on reconnection
                await self._nc.publish(self._next, self._request, reply=self._inbox_subject)

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
        self._running.discard(self)
        if self._watch is not None:
            self._watch.cancel()
        wire = self._wire
        if self._sub is not None:
            if wire is not None:
                wire.unroute(self._sub)
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
        if self._fast is not None:
            await self._fast.close()
