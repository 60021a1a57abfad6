"""The worker thread behind msgflo-python 0.4 style participants: their plain ``process`` runs
here, in arrival order, while the event loop keeps heartbeats and acks going."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from msgflo.transport import Message

if TYPE_CHECKING:
    from msgflo.participant import Participant

log = logging.getLogger("msgflo.participant")

LEGACY_INFLIGHT = 100
"""How many messages may wait for the legacy worker thread before the consumer pauses."""


class Done:
    """An awaitable that is already finished: what ``send`` returns to a worker thread."""

    def __await__(self) -> Any:
        return iter(())


DONE = Done()

SEND, ACK, NACK, FAILED, FINISHED = range(5)
Op = tuple[int, Any, Any]
"""What the legacy thread asks of the event loop: ``(kind, a, b)``, plain data, no coroutine."""


class LegacyWorker:
    """Runs a synchronous ``process`` on one thread, in arrival order.

    A thread hop costs far more than the work of a relay, so nothing crosses per call: messages
    reach the thread through a ``SimpleQueue`` it drains without waking anyone, and the thread's
    sends, acks and nacks go back as tuples in one list, where only the first of a batch wakes
    the loop.  One drain task runs them in the order they were made, so an ack is handed to the
    transport only after the sends that preceded it (at-least-once on AMQP), and the loop stays
    free for heartbeats and acks while user code blocks.
    """

    def __init__(self, participant: Participant, loop: asyncio.AbstractEventLoop) -> None:
        self._participant = participant
        self._loop = loop
        self._inbox: queue.SimpleQueue[tuple[str, Message] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._handback: list[Op] = []
        self._scheduled = False
        self._ops: deque[Op] = deque()
        self._wake: asyncio.Future[None] | None = None
        self._idle = asyncio.Event()
        self._unfinished = 0
        self._room: asyncio.Future[None] | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"msgflo-{participant.role}", daemon=True
        )
        self._thread.start()
        self._drainer = loop.create_task(self._drain())

    def submit(self, port: str, msg: Message) -> Awaitable[None]:
        """Queue a message for the thread; waits only while ``LEGACY_INFLIGHT`` are unfinished."""
        if self._unfinished >= LEGACY_INFLIGHT:
            return self._submit_later(port, msg)
        self._unfinished += 1
        self._inbox.put((port, msg))
        return DONE

    async def _submit_later(self, port: str, msg: Message) -> None:
        while self._unfinished >= LEGACY_INFLIGHT:
            self._room = self._loop.create_future()
            await self._room
        self._unfinished += 1
        self._inbox.put((port, msg))

    def _run(self) -> None:
        process = cast(Callable[[str, Message], None], self._participant.process)
        inbox, hand_back = self._inbox, self.hand_back
        figures = self._participant.figures
        clock = time.perf_counter
        while (item := inbox.get()) is not None:
            port, msg = item
            started = clock()
            try:
                process(port, msg)
            except Exception as exc:
                hand_back((FAILED, msg, exc))
            if figures is not None:
                figures.processing.observe(clock() - started)
            hand_back((FINISHED, None, None))

    def hand_back(self, op: Op) -> None:
        """Called from any thread but the loop's."""
        with self._lock:
            self._handback.append(op)
            if self._scheduled:
                return
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._take)

    def _take(self) -> None:
        with self._lock:
            batch, self._handback = self._handback, []
            self._scheduled = False
        if not batch:
            return
        self._ops.extend(batch)
        self._idle.clear()
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _drain(self) -> None:
        participant, ops = self._participant, self._ops
        while True:
            while ops:
                kind, a, b = ops.popleft()
                try:
                    if kind == SEND:
                        await participant._send(a, b)
                    elif kind == ACK:
                        await participant._settle(a, ack=True)
                    elif kind == NACK:
                        await participant._settle(a, ack=False, reason=b)
                    elif kind == FAILED:
                        await participant._failed(a.port, a, b)
                    else:
                        self._finished()
                except Exception as exc:
                    log.error("%s: %s", participant.role, exc)
            self._idle.set()
            self._wake = self._loop.create_future()
            await self._wake
            self._wake = None

    def _finished(self) -> None:
        self._unfinished -= 1
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    async def stop(self) -> None:
        """Let the thread finish what it was given, carry out what it asked, then end."""
        self._inbox.put(None)
        await self._loop.run_in_executor(None, self._thread.join)
        self._take()
        await self._idle.wait()
        self._drainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._drainer
