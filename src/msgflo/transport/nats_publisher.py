"""JetStream publishes, acknowledged by the server and sent again after a cut.

The acknowledgements are pipelined: waiting for each one would cap a sender at a few thousand
messages a second.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import orjson
from nats.aio.client import Client as Connection
from nats.aio.msg import Msg

from msgflo.transport import _natspy
from msgflo.transport.base import TransportError
from msgflo.transport.nats_connection import status_of

log = logging.getLogger("msgflo.transport.nats")
"""One logger for the whole transport, whichever of its modules speaks."""

PUBLISH_WINDOW = 4096
"""JetStream publishes awaiting their acknowledgement; further sends wait for room."""


class AckedPublisher:
    """JetStream publishes with their acknowledgements pipelined (one round trip would cap a
    sender at a few thousand messages a second), kept until acknowledged so that a
    reconnection sends again what the cut may have lost: at least once."""

    def __init__(self, nc: Connection, where: str, wire: _natspy.Wire | None) -> None:
        self._nc = nc
        self._wire = wire
        self._where = where
        self._inbox = f"{nc.new_inbox()}."
        self._ids = itertools.count()
        self._pending: dict[str, tuple[str, bytes, int, asyncio.Future[None] | None]] = {}
        self._room = asyncio.Semaphore(PUBLISH_WINDOW)
        self._idle = asyncio.Event()
        self._idle.set()
        self._epoch = 0
        self._refused: dict[str, str] = {}

    async def start(self) -> None:
        sub = await self._nc.subscribe(f"{self._inbox}*", cb=self._on_ack)
        if self._wire is not None:
            self._wire.route(sub, self._on_fast_ack)

    async def publish(
        self, subject: str, body: bytes, *, wait: bool
    ) -> asyncio.Future[None] | None:
        """Publish; with ``wait``, a future that settles with the acknowledgement (a refusal is
        logged either way, and raised by :meth:`drain`)."""
        await self._room.acquire()
        token = str(next(self._ids))
        done: asyncio.Future[None] | None = None
        if wait:
            done = asyncio.get_running_loop().create_future()
            done.add_done_callback(lambda f: f.cancelled() or f.exception())  # errors are logged
        self._pending[token] = (subject, body, self._epoch, done)
        self._idle.clear()
        await self._send(subject, body, self._inbox + token)
        return done

    async def _send(self, subject: str, body: bytes, reply: str) -> None:
        if self._wire is None or not self._wire.publish(subject, body, reply):
            await self._nc.publish(subject, body, reply=reply)

    def _on_fast_ack(
        self, subject: bytes, _reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        self._acked(subject.decode(), data, {"Status": status_of(headers)[0]} if headers else None)

    async def _on_ack(self, msg: Msg) -> None:
        self._acked(msg.subject, msg.data, msg.headers)

    def _acked(self, ack_subject: str, data: bytes, headers: dict[str, str] | None) -> None:
        entry = self._pending.pop(ack_subject[len(self._inbox) :], None)
        if entry is None:
            return
        self._room.release()
        subject, _, _, done = entry
        error = None
        if headers and headers.get("Status") == "503":
            error = "no stream takes this subject"
        elif not data.startswith(b'{"stream":') or b'"error"' in data:
            try:
                reply = orjson.loads(data)
                if isinstance(reply, dict) and "error" in reply:
                    error = str(reply["error"].get("description", reply["error"]))
            except orjson.JSONDecodeError:
                error = "unreadable acknowledgement"
        if error is not None:
            if self._refused.get(subject) != error:  # one line per cause, not per message
                log.error("%s: JetStream refused a message on %r: %s", self._where, subject, error)
            self._refused[subject] = error
        if done is not None and not done.done():  # done already: its waiter gave up
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(TransportError(f"{self._where}: {subject!r}: {error}"))
        if not self._pending:
            self._idle.set()

    def lost_connection(self) -> None:
        self._epoch += 1

    async def resend(self) -> None:
        """Send again what was published before the cut and is not acknowledged."""
        for token, (subject, body, epoch, _) in list(self._pending.items()):
            if epoch < self._epoch:
                await self._send(subject, body, self._inbox + token)

    async def drain(self) -> None:
        """Wait for every acknowledgement; raise once for messages refused since last time."""
        await self._idle.wait()
        refused, self._refused = self._refused, {}
        if refused:
            subject, error = next(iter(refused.items()))
            raise TransportError(f"{self._where}: JetStream refused {subject!r}: {error}")
