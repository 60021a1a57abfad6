"""How a coordinator learns the network: discovery messages on ``fbp``, a discovery request
when it starts or an FBP client asks (so that running participants answer at once instead of at
their next heartbeat), and the ``hello`` of participants that answer control requests.  The
wire forms are in :mod:`msgflo.control`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

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
        observe: Callable[[dict[str, Any]], Awaitable[None]],
        can_answer: set[str],
    ) -> None:
        self.broker = broker
        self.events = events
        self._observe = observe
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
        await self._observe(definition)

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
