"""The NATS fast path: the only module that touches nats-py's internals.

nats-py costs more per message than the rest of a relay together.  Each delivery is built into
a ``Msg``, its headers parsed, and it passes an ``asyncio.Queue`` to the subscription's task;
each publish validates the subject, formats the command and checks the connection state.  Here,
on a connection that :func:`unavailable` found to be the tested nats-py:

- the connection's reads are parsed here: ``MSG``, ``PING``, ``PONG`` and ``+OK`` (nearly all
  that a client receives) without a regular expression or a buffer shift per message; from
  the first other operation (``HMSG``, ``INFO``, ``-ERR``) on, the read goes to nats-py's
  parser, and back here once that parser has nothing half-read;
- deliveries of the subscriptions routed here skip ``Msg`` and the subscription's queue: the
  body (and the raw headers of an ``HMSG``) goes straight to an :class:`Inbox`, whose one task
  runs the handler for each in order;
- publishes append the ``PUB`` command (its head cached per subject) to nats-py's pending
  buffer and wake its flusher once per batch: one socket write per event-loop turn, as before.
  While the connection is away, or for a body over the server's limit, the caller uses the
  public ``publish``, which buffers or raises as nats-py documents.

Off (``?fastpath=0``, or another nats-py), the transport uses the public API throughout.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.aio.client import Client as Connection
from nats.aio.subscription import Subscription
from nats.protocol import parser as nats_parser

from msgflo.transport._adapter import Range, missing, untested

log = logging.getLogger(__name__)

TESTED: dict[str, Range] = {"nats-py": ((2, 16), (2, 17))}
"""nats-py versions (lowest, first untested) whose internals this module was checked against."""

_CONNECTION_ATTRIBUTES = (
    "_ps",
    "_process_msg",
    "_process_ping",
    "_process_pong",
    "_pending",
    "_pending_data_size",
    "_max_pending_size",
    "_flush_queue",
    "_max_payload",
)
_NOT_IN_SUBJECT = re.compile(r"[\s\r\n]")

INBOX_LIMIT = 65_536
"""Bodies an :class:`Inbox` holds before it drops (core NATS: a slow consumer loses messages,
as nats-py's own pending limit would drop them)."""

Route = Callable[[bytes, bytes, bytes, bytes | None], None]
"""Called by the connection's reader with (subject, reply, body, raw headers or None); must
not block."""


def unavailable(nc: Connection) -> str | None:
    """Why the fast path cannot run on ``nc`` (a connected client), or None."""
    reason = untested(TESTED)
    if reason is not None:
        return reason
    lacking = missing(nc, _CONNECTION_ATTRIBUTES, "nats.Client.")
    if lacking:
        return f"nats-py lacks {', '.join(lacking)}"
    if not isinstance(getattr(nc, "_pending", None), list):
        return "nats-py's pending buffer is not a list"
    lacking = missing(nc._ps, ("parse", "reset", "buf", "state"), "nats.Parser.") + missing(
        nats_parser, ("AWAITING_CONTROL_LINE",), "nats.protocol.parser."
    )
    if lacking:
        return f"nats-py lacks {', '.join(lacking)}"
    return None


class Wire:
    """One connection's fast receive and publish."""

    def __init__(self, nc: Connection) -> None:
        self._nc = nc
        self._routes: dict[int, Route] = {}
        self._heads: dict[str, bytes] = {}
        original = nc._process_msg

        async def process_msg(
            sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
        ) -> None:
            route = self._routes.get(sid)
            if route is None:
                await original(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            else:
                route(subject, reply, data, headers)

        nc._process_msg = process_msg  # type: ignore[method-assign]
        self._tail = b""
        self._original_parse = nc._ps.parse
        nc._ps.parse = self._parse  # type: ignore[method-assign]
        original_reset = nc._ps.reset

        def reset() -> None:  # nats-py resets its parser for every new connection
            self._tail = b""
            original_reset()

        nc._ps.reset = reset  # type: ignore[method-assign]

    async def _parse(self, data: bytes = b"") -> None:
        """Parse one read; see the module's docstring for what goes to nats-py's parser."""
        nc = self._nc
        ps = nc._ps
        if ps.buf or ps.state != nats_parser.AWAITING_CONTROL_LINE:
            await self._original_parse(data)  # it holds a half-read operation of its own
            return
        if self._tail:
            data, self._tail = self._tail + data, b""
        routes = self._routes
        end = len(data)
        pos = 0
        while pos < end:
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                break
            if data.startswith(b"MSG ", pos):
                parts = data[pos + 4 : eol].split()
                try:
                    size, sid = int(parts[-1]), int(parts[1])
                except (ValueError, IndexError):
                    raise nats.errors.ProtocolError("nats: malformed MSG") from None
                start = eol + 2
                if start + size + 2 > end:
                    break
                body = data[start : start + size]
                reply = parts[2] if len(parts) == 4 else b""
                pos = start + size + 2
                route = routes.get(sid)
                if route is not None:
                    route(parts[0], reply, body, None)
                else:
                    await nc._process_msg(sid, parts[0], reply, body, None)  # type: ignore[arg-type]
            elif data.startswith(b"PING", pos):
                pos = eol + 2
                await nc._process_ping()
            elif data.startswith(b"PONG", pos):
                pos = eol + 2
                await nc._process_pong()
            elif data.startswith(b"+OK", pos):
                pos = eol + 2
            else:
                await self._original_parse(data[pos:])
                return
        if pos < end:
            self._tail = data[pos:]

    def route(self, sub: Subscription, route: Route) -> bool:
        """Hand ``sub``'s deliveries to ``route``; ``False`` (the subscription's callback gets
        them) when the subscription has no id as nats-py 2.16 gives it.  Call it before
        anything awaits after ``subscribe``, so that no delivery goes the other way.  nats-py
        keeps the id across reconnections, so the route stays valid."""
        sid = getattr(sub, "_id", None)
        if not isinstance(sid, int):
            return False
        self._routes[sid] = route
        return True

    def unroute(self, sub: Subscription) -> None:
        self._routes.pop(getattr(sub, "_id", None), None)  # type: ignore[arg-type]

    def publish(self, subject: str, body: bytes, reply: str = "") -> bool:
        """Queue one publish; ``False`` when the caller must use nats-py's ``publish`` (the
        connection is away, the buffer is full, the body is too big, the subject is bad)."""
        nc = self._nc
        if not nc.is_connected or len(body) > nc._max_payload:
            return False
        head = self._heads.get(subject)
        if head is None:
            if not subject or _NOT_IN_SUBJECT.search(subject):
                return False
            head = self._heads[subject] = f"PUB {subject} ".encode()
        if reply:
            if _NOT_IN_SUBJECT.search(reply):
                return False
            command = b"%s%s %d\r\n%s\r\n" % (head, reply.encode(), len(body), body)
        else:
            command = b"%s%d\r\n%s\r\n" % (head, len(body), body)
        size = nc._pending_data_size + len(command)
        if 0 < nc._max_pending_size < size:
            return False
        nc._pending.append(command)
        nc._pending_data_size = size
        queue: asyncio.Queue[Any] | None = nc._flush_queue
        if queue is not None and queue.empty():
            queue.put_nowait(asyncio.get_running_loop().create_future())
        return True


class Inbox:
    """Deliveries of one subscription, handled in order by one task; the connection's reader
    only appends to it, so a handler may wait on the same connection (a reply, an ack)."""

    def __init__(
        self, handle: Callable[[bytes, bytes, bytes | None], Awaitable[None]], where: str
    ) -> None:
        self._handle = handle
        self._where = where
        self._items: list[tuple[bytes, bytes, bytes | None]] = []
        self._wake: asyncio.Future[None] | None = None
        self._dropped = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    def push(self, _subject: bytes, reply: bytes, body: bytes, headers: bytes | None) -> None:
        if len(self._items) >= INBOX_LIMIT:
            if not self._dropped:
                log.warning("%s: more than %d messages waiting; dropping", self._where, INBOX_LIMIT)
            self._dropped += 1
            return
        self._items.append((reply, body, headers))
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _run(self) -> None:
        handle = self._handle
        while True:
            if not self._items:
                self._dropped = 0
                self._wake = asyncio.get_running_loop().create_future()
                await self._wake
                self._wake = None
            batch, self._items = self._items, []
            for reply, body, headers in batch:
                await handle(reply, body, headers)

    async def close(self) -> None:
        self._task.cancel()
        if self._task is not asyncio.current_task():
            await asyncio.gather(self._task, return_exceptions=True)
