"""The MQTT client's outbox: publishes keep their order across a lost connection.

A send goes straight to the link while the connection is up and nothing waits before it.
Otherwise it waits here (up to :data:`OUTBOX_LIMIT`, then the sender waits for the
reconnection) and goes out first thing on the next connection.  QoS 1 and 2 publishes are kept
until the broker acknowledges them, so that those a cut swallowed are sent again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from msgflo.transport.base import TransportError

if TYPE_CHECKING:  # mqtt_link imports OUTBOX_LIMIT from here
    from msgflo.transport.mqtt_link import Link, Sent

OUTBOX_LIMIT = 10_000
"""Sends kept while the connection is down; further sends wait for the reconnection."""
FLUSH_POLL = 0.005


class Outbox:
    """Publishes on :attr:`link` in order, keeping what cannot go out until :meth:`resume`.

    The client points :attr:`link` at each link as it opens it (``None`` once closed), and
    tells the outbox when the connection is lost (:meth:`hold`), back (:meth:`resume`) and
    closing (:meth:`close`, then :meth:`clear`).
    """

    def __init__(self, where: str) -> None:
        self.link: Link | None = None
        self._where = where
        self._waiting: deque[tuple[str, bytes, int]] = deque()
        self._unacked: deque[tuple[str, bytes, int, Sent]] = deque()
        self._last_sent: Sent | None = None
        self._closed = True
        # Set while the connection is up, and once closed: senders waiting for room go on.
        self._flowing = asyncio.Event()

    def publish(self, topic: str, body: bytes, qos: int) -> bool:
        """Hand ``body`` to the link now; ``False`` when it cannot take it (connection down)."""
        link = self.link
        if link is None:
            return False
        sent = link.publish(topic, body, qos)  # None when its connection is down
        if sent is None:
            return False
        self._last_sent = sent
        if qos:
            unacked = self._unacked
            while unacked and unacked[0][3].done():
                unacked.popleft()
            unacked.append((topic, body, qos, sent))
        return True

    async def send(self, topic: str, body: bytes, qos: int) -> None:
        """Publish now, or keep it (in order) until the connection is back."""
        if not self._waiting and self.publish(topic, body, qos):
            return
        while True:
            if self._closed:
                raise TransportError(f"{self._where}: not connected")
            if len(self._waiting) < OUTBOX_LIMIT:
                self._waiting.append((topic, body, qos))
                return
            await self._flowing.wait()

    async def flush(self) -> None:
        """Wait until the last send is written out (QoS 0) or acknowledged (QoS 1 and 2).

        The broker acknowledges in publish order, so the last send stands for all of them.
        """
        if self.link is not None:
            self.link.write_pending()
        while not self._closed:
            await self._flowing.wait()
            sent = self._last_sent
            if self._closed or (sent is None and not self._waiting) or (sent and sent.done()):
                return
            await asyncio.sleep(FLUSH_POLL)

    def hold(self, link: Link) -> None:
        """``link`` is lost: what the broker had not acknowledged goes out again first, then
        what was waiting."""
        self._flowing.clear()
        again = [(t, b, q) for t, b, q, sent in self._unacked if not sent.done()]
        again += [(t, b, 0) for t, b in link.take_unsent()]
        self._unacked.clear()
        self._waiting.extendleft(reversed(again))
        self._last_sent = None

    def resume(self) -> None:
        """The connection is up on :attr:`link`: send what waits, then let sends through."""
        while self._waiting and self.publish(*self._waiting[0]):
            self._waiting.popleft()
        self._closed = False
        self._flowing.set()

    def close(self) -> None:
        """The client is closing: sends that cannot go out now fail instead of waiting."""
        self._closed = True
        self._flowing.set()

    def clear(self) -> None:
        """Forget what waits and what is unacknowledged (the client has closed)."""
        self._waiting.clear()
        self._unacked.clear()
