"""What exists on the broker, and how deep a queue is: passive declares, no management plugin.

A passive declare of something missing makes the broker close the channel (404), so lookups run
on channels of their own and never on the data or topology channel.
"""

from __future__ import annotations

import logging

import aiormq.exceptions
from aiormq.abc import AbstractChannel
from pamqp import commands as spec

from msgflo.transport.amqp_errors import describe
from msgflo.transport.amqp_session import Session, WaitSession
from msgflo.transport.base import Address, QueueDepth, TransportError

log = logging.getLogger("msgflo.transport.amqp")


def _case_variants(name: str) -> list[str]:
    """Likely intended spellings of a queue name: ports are upper case (``role.IN``)."""
    role, dot, port = name.rpartition(".")
    candidates = [name.upper(), name.lower()]
    if dot:
        candidates[:0] = [f"{role}.{port.upper()}", f"{role.lower()}.{port.upper()}"]
    return [c for c in dict.fromkeys(candidates) if c != name]


class Lookup:
    """Passive declares for one client: existence checks open a channel per question; depths,
    asked over and over by monitors, reuse one channel per session."""

    def __init__(self, address: Address, wait_session: WaitSession) -> None:
        self._address = address
        self._wait_session = wait_session
        self._depths: tuple[Session, AbstractChannel] | None = None

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

    async def exists(self, name: str, what: str) -> bool:
        return await self._passive(name, what) is not None

    async def depth(self, session: Session, name: str) -> QueueDepth | None:
        """RabbitMQ answers a passive declare with the ready messages and consumers of the queue."""
        try:
            if self._depths is None or self._depths[0] is not session or self._depths[1].is_closed:
                self._depths = (session, await session.amqp.channel(publisher_confirms=False))
            ok = await self._depths[1].queue_declare(name, passive=True)
        except (aiormq.exceptions.AMQPError, ConnectionError, TimeoutError) as exc:
            log.debug("no depth for queue %r: %s", name, describe(exc))
            self._depths = None
            return None
        return QueueDepth(int(ok.message_count or 0), int(ok.consumer_count or 0))

    async def missing(self, name: str, *kinds: str) -> str:
        """``queue 'x.in' does not exist on ...; did you mean 'x.IN'?`` (names are case-sensitive)."""
        what = " or ".join(kinds)
        message = f"{what} {name!r} does not exist on {self._address.redacted()}"
        for variant in _case_variants(name):
            for kind in kinds:
                if await self.exists(variant, kind):
                    return f"{message}; did you mean {variant!r}? (names are case-sensitive)"
        return message

    async def check_queue(self, name: str) -> None:
        """An inport is a queue and an exchange, an outport an exchange: either will do."""
        if not await self.exists(name, "exchange") and not await self.exists(name, "queue"):
            raise TransportError(await self.missing(name, "queue", "exchange"))
