"""How a started participant stays known to coordinators: its discovery message is sent again
on every heartbeat and on a discovery request, and on MQTT a control channel lets a coordinator
hand it an edge's source to take input from (:mod:`msgflo.control`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

from msgflo.control import ControlServer, DiscoveryResponder, share_group
from msgflo.transport import Client, Message

log = logging.getLogger("msgflo.participant")

DEFAULT_DISCOVERY_PERIOD = 60.0
HEARTBEAT_DIVISOR = 2.2
"""The original announces every ``period / 2.2`` s so two announcements land inside a period."""

Announce = Callable[[], Awaitable[None]]
Handler = Callable[[Message], Awaitable[None]]
Inlet = Callable[[str], tuple[str, Handler]]
"""An inport's queue and message handler, by port name."""


def discovery_period() -> float:
    raw = os.environ.get("MSGFLO_DISCOVERY_PERIOD")
    if not raw:
        return DEFAULT_DISCOVERY_PERIOD
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"MSGFLO_DISCOVERY_PERIOD={raw!r} is not a number of seconds") from exc
    if value <= 0:
        raise ValueError(f"MSGFLO_DISCOVERY_PERIOD={raw!r} must be positive")
    return value


class Presence:
    """One participant's heartbeat, discovery responder and control channel. ``announce`` is
    the participant's own, which stays quiet once it has stopped."""

    def __init__(self, announce: Announce, inlet: Inlet) -> None:
        self._role = ""
        self._announce = announce
        self._inlet = inlet
        self._client: Client | None = None
        self._control: ControlServer | None = None
        self._responder: DiscoveryResponder | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._attached: set[str] = set()

    async def open(self, client: Client, participant_id: str, role: str) -> None:
        """The control channel, where the broker has one: a coordinator may use it as soon as
        the participant is announced."""
        self._client, self._role = client, role
        if client.supports_attach:
            self._control = ControlServer(client, participant_id, self._attach, self._detach)
            await self._control.start()

    async def hello(self) -> None:
        """Sent before each discovery message, so that a coordinator knows it may ask us to
        take an edge's source ourselves."""
        if self._control is not None:
            await self._control.hello()

    async def keep_announcing(self) -> None:
        assert self._client is not None
        self._responder = DiscoveryResponder.of(self._client)
        await self._responder.add(self._announce)
        period = discovery_period() / HEARTBEAT_DIVISOR
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat(period))

    async def leave(self, client: Client) -> None:
        """Take no more input from attached sources, and answer no more discovery requests."""
        for source in list(self._attached):
            await client.detach(source)
        if self._control is not None:
            await self._control.stop()
        if self._responder is not None:
            await self._responder.remove(self._announce)
            self._responder = None

    async def stop_heartbeat(self) -> None:
        """Last, so that coordinators keep counting the participant while it finishes."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

    async def _attach(self, port: str, source: str) -> None:
        """A coordinator asks us to take ``port``'s input straight from ``source`` (MQTT)."""
        assert self._client is not None
        queue, handler = self._inlet(port)
        await self._client.attach(source, handler, group=share_group(queue))
        self._attached.add(source)

    async def _detach(self, port: str, source: str) -> None:
        assert self._client is not None
        await self._client.detach(source)
        self._attached.discard(source)

    async def _beat(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await self._announce()
            except Exception as exc:  # the next beat tries again; a beat must never end the loop
                log.warning("%s: discovery not sent: %s", self._role, exc)
