"""The JetStream streams behind declared queues, and which stream captures which subject.

Every declared queue gets a stream of its own, named after it (:func:`jetstream_name`).  Which
stream captures a subject is asked once and remembered; a subject found on no stream is asked
again after :data:`RECHECK` seconds, since someone may make one meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType

from msgflo.transport.base import QueueDepth, TransportError
from msgflo.transport.nats_connection import cause

log = logging.getLogger("msgflo.transport.nats")
"""One logger for the whole transport, whichever of its modules speaks."""

RECHECK = 1.0
"""Seconds after which a subject found on no stream is looked up again (one may be made)."""

_INVALID_NAME = re.compile(r"[^A-Za-z0-9_-]")


def jetstream_name(subject: str) -> str:
    """A stream or consumer name for ``subject`` (those names may not hold ``.``, ``*``, ...)."""
    safe = _INVALID_NAME.sub("_", subject)
    if safe != subject:
        safe += "-" + hashlib.sha1(subject.encode()).hexdigest()[:8]
    return f"msgflo-{safe}"


class Streams:
    """The client's view of the server's streams.  :attr:`js` is ``None`` on core NATS, where
    no subject has a stream."""

    def __init__(self, where: str, max_msgs: int) -> None:
        self.js: JetStreamContext | None = None
        self._where = where
        self._max_msgs = max_msgs
        self._known: dict[str, str | None] = {}
        self._missed: dict[str, float] = {}

    async def ensure(
        self, subject: str, retention: RetentionPolicy | None, persistent: bool = True
    ) -> str:
        """The stream that captures ``subject``: an existing one, or one made for it."""
        assert self.js is not None
        known = self._known.get(subject)
        if known:
            return known
        name = jetstream_name(subject)
        try:
            await self.js.add_stream(
                name=name,
                subjects=[subject],
                retention=retention or RetentionPolicy.INTEREST,
                storage=StorageType.FILE if persistent else StorageType.MEMORY,
                max_msgs=self._max_msgs,
                discard=DiscardPolicy.NEW,
            )
        except nats.js.errors.BadRequestError as exc:  # exists, perhaps with another config
            found = await self.of(subject, refresh=True)
            if found is None:
                raise TransportError(
                    f"{self._where}: cannot create stream for {subject!r}: {cause(exc)}"
                ) from exc
            return found
        except (nats.errors.Error, TimeoutError) as exc:
            raise TransportError(
                f"{self._where}: cannot create stream for {subject!r}: {cause(exc)}"
            ) from exc
        self._known[subject] = name
        return name

    async def depth(self, name: str) -> QueueDepth | None:
        """The messages the queue's stream still holds (work-queue retention: not yet acked,
        so deliveries in progress count too); ``None`` without a stream."""
        if self.js is None:
            return None
        try:
            stream = await self.of(name)
            if stream is None:
                return None
            state = (await self.js.stream_info(stream)).state
        except (TransportError, nats.errors.Error, TimeoutError) as exc:
            log.debug("no depth for %r: %s", name, exc)
            return None
        return QueueDepth(int(state.messages), state.consumer_count)

    async def of(self, subject: str, *, refresh: bool = False) -> str | None:
        """The stream capturing ``subject``, or ``None`` when it travels on core NATS."""
        if self.js is None:
            return None
        if not refresh and subject in self._known:
            known = self._known[subject]
            if known is not None or time.monotonic() - self._missed.get(subject, 0) < RECHECK:
                return known
        try:
            found: str | None = await self.js.find_stream_name_by_subject(subject)
        except nats.js.errors.NotFoundError:
            found = None
        except (nats.errors.Error, TimeoutError) as exc:
            raise TransportError(
                f"{self._where}: cannot look up the stream of {subject!r}: {cause(exc)}"
            ) from exc
        self._known[subject] = found
        if found is None:
            self._missed[subject] = time.monotonic()
        return found

    async def remove(self, name: str) -> None:
        """Delete the stream made for queue ``name`` (not one someone else made for it)."""
        stream = await self.of(name)
        if stream is not None and stream == jetstream_name(name):
            assert self.js is not None
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.js.delete_stream(stream)
        self._known.pop(name, None)
