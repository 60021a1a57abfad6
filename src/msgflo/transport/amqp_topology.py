"""What a client declares on the broker, and declares again on every new connection.

Queues, exchanges and bindings are declared with exactly msgflo-nodejs' flags (see
:mod:`msgflo.transport.amqp`), so that a Node peer and we can declare the same names in any
order.  Declarations run on the session's topology channel: one the broker refuses closes that
channel only, never the one carrying deliveries.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq.exceptions
from aiormq.abc import AbstractChannel

from msgflo.transport.amqp_errors import refusal
from msgflo.transport.amqp_session import Session, WaitSession
from msgflo.transport.base import DISCOVERY_QUEUE, Address, QueueKind, TransportError

log = logging.getLogger("msgflo.transport.amqp")

Op = Callable[[AbstractChannel], Awaitable[object]]
Key = tuple[str, ...]
"""Names a declaration, e.g. ``("qbind", queue, exchange)``, so that it can be forgotten."""


def declare_queue(
    name: str, *, durable: bool, exclusive: bool = False, arguments: dict[str, Any] | None = None
) -> Op:
    return lambda ch: ch.queue_declare(
        name, durable=durable, exclusive=exclusive, auto_delete=not durable, arguments=arguments
    )


def declare_exchange(name: str, kind: str = "fanout", *, durable: bool = True) -> Op:
    return lambda ch: ch.exchange_declare(
        name, exchange_type=kind, durable=durable, auto_delete=not durable
    )


def bind_queue(queue: str, exchange: str) -> Op:
    return lambda ch: ch.queue_bind(queue, exchange, routing_key="")


def unbind_queue(queue: str, exchange: str) -> Op:
    return lambda ch: ch.queue_unbind(queue, exchange, routing_key="")


def bind_exchange(destination: str, source: str) -> Op:
    return lambda ch: ch.exchange_bind(destination, source, routing_key="")


class Topology:
    """The declarations of one client, in the order they were made, each under its :data:`Key`.

    A new connection starts without anything the broker forgot (auto-deleted and exclusive
    queues, everything after a broker restart), so :meth:`replay` declares it all again before
    consumers resume.
    """

    def __init__(
        self, address: Address, wait_session: WaitSession, *, feed_fbp_queue: bool
    ) -> None:
        self._address = address
        self._wait_session = wait_session
        self._feed_fbp_queue = feed_fbp_queue
        self._ops: dict[Key, Op] = {}
        self.exchanges: set[str] = set()
        """Exchanges known to exist on the broker: a send to one declares nothing first."""

    async def replay(self, session: Session) -> None:
        """Declare everything again on a new connection; a refusal is logged and the rest go on."""
        for op in list(self._ops.values()):
            try:
                await op(await session.topology())
            except aiormq.exceptions.ChannelClosed as exc:
                log.warning("re-declaring on %s failed: %s", self._address.redacted(), refusal(exc))

    def clear(self) -> None:
        self._ops.clear()
        self.exchanges.clear()

    async def declare(
        self, op: Op, what: str, *, key: Key | None = None, exists_ok: bool = False
    ) -> None:
        """Run a declaration, again after a reconnect if the connection drops meanwhile.

        With ``key`` it is remembered and repeated on every new connection.  ``exists_ok``
        accepts a 406 PRECONDITION_FAILED: the entity exists, only declared with other flags.
        """
        if key is not None:
            self._ops[key] = op
        while True:
            session = await self._wait_session()
            try:
                await op(await session.topology())
                return
            except aiormq.exceptions.ChannelPreconditionFailed as exc:
                if exists_ok:
                    log.info("%s: using the existing one (%s)", what, refusal(exc))
                    if key is not None:
                        del self._ops[key]
                    return
                error: Exception = exc
            except Exception as exc:
                error = exc
            if session.alive:
                if key is not None:
                    self._ops.pop(key, None)
                raise TransportError(
                    f"{what} refused by {self._address.redacted()}: {refusal(error)}"
                ) from error

    def forget(self, predicate: Callable[[Key], bool]) -> None:
        """Stop declaring again what ``predicate`` picks; the broker keeps what it has."""
        for key in [k for k in self._ops if predicate(k)]:
            del self._ops[key]

    def discard(self, key: Key) -> None:
        self._ops.pop(key, None)

    async def create_queue(self, kind: QueueKind, name: str, *, persistent: bool) -> None:
        if kind is QueueKind.IN:
            await self.declare(
                declare_queue(
                    name, durable=persistent, arguments={"x-dead-letter-exchange": f"dead-{name}"}
                ),
                f"declaring queue {name!r}",
                key=("queue", name),
            )
        await self.declare(
            declare_exchange(name, durable=persistent),
            f"declaring exchange {name!r}",
            key=("exchange", name),
        )
        self.exchanges.add(name)
        if kind is QueueKind.IN:
            await self.declare(
                bind_queue(name, name), f"binding queue {name!r}", key=("qbind", name, name)
            )

    async def remove_queue(self, kind: QueueKind, name: str) -> None:
        if kind is QueueKind.IN:
            self.forget(lambda k: k[0] in ("queue", "qbind") and k[1] == name)
            await self.declare(lambda ch: ch.queue_delete(name), f"deleting queue {name!r}")
        else:
            self.exchanges.discard(name)
            self.forget(
                lambda k: (
                    (k[0] == "exchange" and k[1] == name)
                    or (k[0] == "qbind" and k[2] == name)
                    or (k[0] == "xbind" and name in k[1:])
                )
            )
            await self.declare(lambda ch: ch.exchange_delete(name), f"deleting exchange {name!r}")

    async def ensure_exchange(self, name: str) -> None:
        """Publishing to a missing exchange would close the channel (404): declare on first use."""
        await self.declare(
            declare_exchange(name),
            f"declaring exchange {name!r}",
            key=("exchange", name),
            exists_ok=True,
        )
        self.exchanges.add(name)

    async def ensure_discovery(self) -> None:
        """The exchange we announce on; the queue ``fbp`` is fed from it only when asked."""
        if DISCOVERY_QUEUE in self.exchanges:
            return
        await self.ensure_exchange(DISCOVERY_QUEUE)
        if self._feed_fbp_queue:
            await self.ensure_discovery_queue()
            await self.declare(
                bind_queue(DISCOVERY_QUEUE, DISCOVERY_QUEUE),
                "binding the discovery queue",
                key=("qbind", DISCOVERY_QUEUE, DISCOVERY_QUEUE),
            )

    async def ensure_discovery_queue(self) -> None:
        await self.declare(
            declare_queue(DISCOVERY_QUEUE, durable=True),
            "declaring the discovery queue",
            key=("queue", DISCOVERY_QUEUE),
            exists_ok=True,
        )
