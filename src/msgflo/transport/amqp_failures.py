"""Messages that failed: dead letters with their reason, and retries through delay queues.

Either way the failed delivery is acked only once the broker has confirmed the copy that
replaces it, so a message is never lost between the two (at least once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiormq.exceptions

from msgflo.transport.amqp_confirms import Confirms
from msgflo.transport.amqp_session import Token
from msgflo.transport.amqp_topology import Topology, bind_queue, declare_queue
from msgflo.transport.base import Message, TransportError
from msgflo.transport.reason import RETRY_HEADER, RETRY_QUEUE_PREFIX, to_headers

log = logging.getLogger("msgflo.transport.amqp")


class Failures:
    """Where a client's failed messages go, declared as msgflo-nodejs declares them."""

    def __init__(self, topology: Topology, confirms: Confirms) -> None:
        self._topology = topology
        self._confirms = confirms

    async def nack(
        self, message: Message, *, requeue: bool, reason: Mapping[str, Any] | None
    ) -> None:
        """Without ``reason`` the broker dead-letters (``x-death``), as msgflo-nodejs does; with
        one, the message is published to the exchange ``dead-<queue>`` with the reason in
        headers and confirmed before the delivery is acked (at least once, never lost)."""
        if message.settled:
            return
        if reason is None or requeue or not isinstance(message.token, Token):
            message.nacked = True
            self._confirms.settle(message, ack=False, requeue=requeue)
            return
        try:
            await self._dead_letter(message.queue, message.body, to_headers(reason))
        except TransportError as exc:
            log.error("%s; letting the broker dead-letter it without its reason", exc)
            message.nacked = True
            self._confirms.settle(message, ack=False)
            return
        message.nacked = True
        self._confirms.settle(message, ack=True)

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
        await self._confirms.publish_apart(
            "", parking, message.body, headers={RETRY_HEADER: attempt}
        )
        message.acked = True
        self._confirms.settle(message, ack=True)
        return True

    async def _dead_letter(self, queue: str, body: bytes, headers: dict[str, Any]) -> None:
        """Publish to ``dead-<queue>`` (declared as msgflo-nodejs declares it); a dead letter no
        queue takes is parked in a durable queue of that name instead of vanishing."""
        exchange = f"dead-{queue}"
        await self._topology.ensure_exchange(exchange)
        try:
            await self._confirms.publish_apart(exchange, "", body, mandatory=True, headers=headers)
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
            await self._confirms.publish_apart(exchange, "", body, mandatory=True, headers=headers)
        except aiormq.exceptions.PublishError:
            raise TransportError(f"dead letter of {queue!r} returned by the broker") from None
