"""Publisher confirms, and acks held back until the publishes made before them are confirmed.

Delivery is at-least-once: an input must be settled only once its outputs are safe.  A send
never waits for its confirm; every publish stays in :class:`Confirms` until the broker confirms
it, and an ack or nack waits there until every publish made earlier on the client is confirmed.
Publishes not confirmed when the connection dropped are published again on the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import aiormq.exceptions
from pamqp import commands as spec

from msgflo.transport.amqp_errors import refusal
from msgflo.transport.amqp_session import Publish, Session, Token, WaitSession
from msgflo.transport.base import Address, Message, TransportError

log = logging.getLogger("msgflo.transport.amqp")

MAX_UNCONFIRMED = 1024
"""Publishes in flight (or buffered while disconnected) before a send waits."""
MAX_UNCONFIRMED_BYTES = 64 * 1024 * 1024
DISCONNECT_GRACE = 5.0
"""How long disconnect() waits for outstanding confirms before giving up on them."""


@dataclass(slots=True)
class Settle:
    after: int
    """Sequence number of the last publish that must be confirmed before this goes out."""
    token: Token
    ack: bool
    requeue: bool = False


class Confirms:
    """Every publish of one client until it is confirmed, and the acks and nacks waiting on them.

    Publishes are numbered in the order they are made; the session they are written to maps its
    delivery tags to them.  What an event-loop turn produced (publishes, releasable acks) is
    handed to the session once, at the turn's end, and acks are coalesced into one
    ``multiple=True`` ack for the oldest unsettled deliveries.
    """

    def __init__(self, address: Address, wait_session: WaitSession, delivery_mode: int) -> None:
        self._address = address
        self._wait_session = wait_session
        self._delivery_mode = delivery_mode
        self._running = False
        self._session: Session | None = None
        self._seq = 0
        self._unconfirmed: OrderedDict[int, Publish] = OrderedDict()
        self._unconfirmed_bytes = 0
        self._room = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._errors: list[str] = []
        self._settle_queue: deque[Settle] = deque()
        self._turn_end_scheduled = False

    # -- sessions -------------------------------------------------------------------------------

    def start(self, session: Session) -> None:
        """The client is connected: sends are taken from now on."""
        self._running = True
        self.attach(session)

    def attach(self, session: Session) -> None:
        """Write to ``session`` from now on, first every publish not yet confirmed, in order."""
        self._session = session
        for pub in self._unconfirmed.values():
            session.publish(pub)
        self._end_turn_soon()

    def detach(self) -> None:
        """The session is gone: publishes wait for the next one, settles stay queued."""
        self._session = None

    async def finish(self) -> None:
        """Before disconnecting: give outstanding confirms a grace period, write out the acks
        they release and hand everything to the socket."""
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

    def stop(self) -> None:
        """Refuse sends from now on and wake those waiting for room or confirms."""
        self._running = False
        if self._unconfirmed:
            log.warning(
                "%d message(s) to %s were never confirmed by the broker",
                len(self._unconfirmed),
                self._address.redacted(),
            )
        self._room.set()
        self._drained.set()

    def clear(self) -> None:
        self._unconfirmed.clear()
        self._unconfirmed_bytes = 0
        self._settle_queue.clear()

    # -- publishing -----------------------------------------------------------------------------

    async def publish(self, exchange: str, routing_key: str, body: bytes) -> None:
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
            raise TransportError(f"not connected to {self._address.redacted()}")
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

    def on_confirm(self, session: Session, tag: int, multiple: bool, ack: bool) -> None:
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
                f"publish to {target} on {self._address.redacted()} failed: refused by the broker"
            )
            log.error("%s", message)
            self._errors.append(message)
        self._unconfirmed_bytes -= len(pub.body)
        self._room.set()
        if not self._unconfirmed:
            self._drained.set()

    async def flush(self) -> None:
        """Wait until every publish so far is confirmed; raise if the broker refused any."""
        while self._running and self._unconfirmed:
            await self._drained.wait()
        errors, self._errors = self._errors, []
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise TransportError(errors[0] + more)

    async def publish_apart(
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
            delivery_mode=self._delivery_mode,
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
                    f"publish to {target} refused by {self._address.redacted()}: {refusal(exc)}"
                ) from exc
            if isinstance(confirm, spec.Basic.Nack):
                raise TransportError(
                    f"publish to {target} on {self._address.redacted()} failed: "
                    "refused by the broker"
                )
            return

    # -- settling -------------------------------------------------------------------------------

    def settle(self, message: Message, *, ack: bool, requeue: bool = False) -> None:
        """Ack or nack ``message`` once the publishes made before this call are confirmed."""
        if isinstance(message.token, Token):
            self._settle_queue.append(Settle(self._seq, message.token, ack, requeue))
            self._end_turn_soon()

    def requeue(self, token: Token) -> None:
        """Hand back a delivery nobody will handle, without waiting for any publish."""
        self._settle_queue.append(Settle(0, token, ack=False, requeue=True))
        self._end_turn_soon()

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
            _send_acks(session, acks)
            acks = []
            session.unsettled.pop(item.token.tag, None)
            session.method(spec.Basic.Nack(delivery_tag=item.token.tag, requeue=item.requeue))
        _send_acks(session, acks)


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
