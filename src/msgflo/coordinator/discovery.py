"""How a coordinator learns the network: discovery messages on ``fbp``, a discovery request
when it starts or an FBP client asks (so that running participants answer at once instead of at
their next heartbeat), and the ``hello`` of participants that answer control requests.  The
wire forms are in :mod:`msgflo.control`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from msgflo.control import (
    DEFAULT_JITTER,
    DISCOVER_CHANNEL,
    HELLO_CHANNEL,
    discovery_request,
    hello_sender,
)
from msgflo.coordinator.events import Event, EventKind, Events
from msgflo.coordinator.registry import normalize_discovery, sender_of
from msgflo.transport import Broker, Message, QueueKind, TransportError
from msgflo.transport.envelope import DiscoveryPayload

WARN_INTERVAL = 60.0
"""A sender of malformed discovery messages is warned about at most once this often."""
MAX_WARNINGS = 20
"""Malformed messages warned about per :data:`WARN_INTERVAL` from all senders together: a
flood of forged senders costs this many lines, then one that says the rest are dropped."""

MIN_REQUEST_INTERVAL = 1.0
"""Requests closer together than this are dropped: every FBP client that lists components
would otherwise make the whole network announce again."""


class Discovery:
    """The coordinator's listening and asking; ``observe`` takes each usable definition."""

    def __init__(
        self,
        broker: Broker,
        events: Events,
        observe: Callable[[DiscoveryPayload], object],
        can_answer: set[str],
    ) -> None:
        self.broker = broker
        self.events = events
        self._observe = observe
        """Not awaited: the next answer is read at once, and answers that arrive while the
        coordinator re-plans are taken in together (see :class:`Arrivals`)."""
        self.can_answer = can_answer
        """Participants that said ``hello``; shared with the binder, which asks only them."""
        self._last_request = float("-inf")
        self._warned: dict[str, float] = {}

    async def start(self) -> None:
        if self.broker.supports_attach:
            await self.broker.subscribe_broadcast(HELLO_CHANNEL, self._on_hello)
        await self.broker.subscribe_participant_change(self._on_discovery)
        await self.request()

    async def request(self, jitter: float = DEFAULT_JITTER) -> bool:
        """Ask every participant that listens to announce itself now; ``False`` when a request
        went out less than :data:`MIN_REQUEST_INTERVAL` ago or could not be sent."""
        now = time.monotonic()
        if now - self._last_request < MIN_REQUEST_INTERVAL:
            return False
        self._last_request = now
        try:
            await self.broker.send_raw(QueueKind.OUT, DISCOVER_CHANNEL, discovery_request(jitter))
        except TransportError as exc:
            self.events.warn_once(f"request {exc}", f"cannot request discovery: {exc}")
            return False
        return True

    async def _on_hello(self, message: Message) -> None:
        # Nothing awaits before the id is noted: the discovery message that follows the hello
        # is handled after it, and finds the participant askable.
        sender = hello_sender(message.data)
        if sender is not None:
            self.can_answer.add(sender)

    async def _on_discovery(self, message: Message) -> None:
        definition, why = normalize_discovery(message.data)
        if definition is None:
            self._warn(sender_of(message.data), why)
            return
        self._observe(definition)

    def _warn(self, sender: str, why: str) -> None:
        """One line per sender and reason per :data:`WARN_INTERVAL`, within
        :data:`MAX_WARNINGS`; what is remembered for this expires with the interval."""
        now = time.monotonic()
        self._warned = {k: t for k, t in self._warned.items() if now - t < WARN_INTERVAL}
        key = f"{sender}\0{why}"
        if key in self._warned or len(self._warned) > MAX_WARNINGS:
            return
        self._warned[key] = now
        if len(self._warned) > MAX_WARNINGS:
            text = (
                f"more than {MAX_WARNINGS} malformed discovery messages in "
                f"{WARN_INTERVAL:g} s; not warning about more for now"
            )
        else:
            text = f"ignoring discovery from {sender}: {why}"
        self.events.emit(Event(EventKind.WARNING, message=text))


Batch = list[tuple[DiscoveryPayload, "asyncio.Future[None] | None"]]


class Arrivals:
    """Discovery definitions waiting to be taken in, in order of arrival.

    A discovery request makes the whole network answer within a fraction of a second; taking
    each answer in with a re-plan and control round trips of its own would cost hundreds of
    round trips one after the other. The definitions that arrive while one batch is being
    taken in (under the coordinator's lock) form the next batch: one re-plan for all of them.
    """

    def __init__(
        self,
        take_in: Callable[[list[DiscoveryPayload]], Awaitable[None]],
        failed: Callable[[Exception], None],
    ) -> None:
        self._take_in = take_in
        self._failed = failed
        self._waiting: Batch = []
        self._worker: asyncio.Task[None] | None = None

    def add(
        self, definition: DiscoveryPayload, *, wait: bool = False
    ) -> asyncio.Future[None] | None:
        """Queue ``definition``; with ``wait``, a future done once it has been taken in (and
        carrying the error if that failed)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future() if wait else None
        self._waiting.append((definition, done))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return done

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._take_in([definition for definition, _ in batch])
            except asyncio.CancelledError:
                for _, done in batch:
                    if done is not None:
                        done.cancel()
                raise
            except Exception as exc:
                self._failed(exc)
                _settle(batch, exc)
            else:
                _settle(batch, None)

    async def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        waiting, self._waiting = self._waiting, []
        for _, done in waiting:
            if done is not None and not done.done():
                done.cancel()


def _settle(batch: Batch, error: Exception | None) -> None:
    for _, done in batch:
        if done is None or done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
