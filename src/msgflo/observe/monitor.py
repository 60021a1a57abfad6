"""Watch the queues that carry a system's output and fail when expected traffic stops.

``msgflo-monitor --queue sensor.NEWVALUE --expect-periodic 1s --fail-missed 3`` reads a copy of
what passes each queue, beside its consumers (AMQP: a private queue bound to the queue's
exchange; MQTT: a plain subscription), and exits non-zero once three periods pass without a
message on any of them, so that systemd's ``OnFailure=`` (or ``--exec``) can recover the system.
Under systemd it says ``READY=1`` once it watches and sends ``WATCHDOG=1`` while it runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from msgflo.observe.systemd import Notifier
from msgflo.transport import Binding, Broker

log = logging.getLogger(__name__)

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")


def parse_duration(text: str) -> float:
    """``500ms``, ``1s``, ``1.5s``, ``2m``, ``1h`` or plain seconds, as seconds (> 0)."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration (e.g. 500ms, 1s, 2m)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


@dataclass(slots=True)
class Watched:
    """One queue: when a message last passed (or watching began) and how many did."""

    queue: str
    last: float
    count: int = 0

    def missed(self, now: float, period: float) -> int:
        return int((now - self.last) // period)


@dataclass(frozen=True, slots=True)
class MonitorOptions:
    queues: Sequence[str]
    period: float
    fail_missed: int = 3
    command: str | None = None
    keep_running: bool = False


class StatusLine:
    """One line, rewritten in place on a terminal; elsewhere (a log, the journal) a plain line
    each time the state changes, not on every tick."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._last_state = ""

    def show(self, line: str, state: str) -> None:
        if self.tty:
            self.stream.write(f"\r\x1b[2K{line}")
        elif state != self._last_state:
            self.stream.write(f"{line}\n")
        else:
            return
        self._last_state = state
        self.stream.flush()

    def end(self, line: str) -> None:
        """The last line, always written and ended."""
        self.stream.write(f"\r\x1b[2K{line}\n" if self.tty else f"{line}\n")
        self.stream.flush()


@dataclass
class QueueMonitor:
    broker: Broker
    options: MonitorOptions
    out: StatusLine = field(default_factory=StatusLine)
    notifier: Notifier = field(default_factory=Notifier)
    clock: Callable[[], float] = time.monotonic
    watched: dict[str, Watched] = field(default_factory=dict)

    async def _seen(self, binding: Binding, _data: Any) -> None:
        watched = self.watched.get(binding.src)
        if watched is not None:
            watched.last = self.clock()
            watched.count += 1

    def _describe(self, now: float) -> tuple[str, str]:
        """The status line and its state (what changes it, without counts and ages)."""
        parts, states = [], []
        for w in self.watched.values():
            missed = w.missed(now, self.options.period)
            if missed >= self.options.fail_missed:
                state = "FAILED"
            elif missed:
                state = f"missed {missed} of {self.options.fail_missed}"
            else:
                state = "ok"
            seen = f"last {now - w.last:.1f}s ago" if w.count else "nothing yet"
            parts.append(f"{w.queue}: {state}, {w.count} messages, {seen}")
            states.append(f"{w.queue}:{state}")
        return " | ".join(parts), " ".join(states)

    async def start(self) -> None:
        """Check every queue exists (where the broker can tell), then watch them all."""
        for queue in self.options.queues:
            await self.broker.check_queue(queue)
        now = self.clock()
        for queue in self.options.queues:
            self.watched[queue] = Watched(queue, now)
            await self.broker.subscribe_data(Binding(queue, queue), self._seen)
        line, _ = self._describe(now)
        self.notifier.ready(line)

    async def run(self, stop: asyncio.Event) -> int:
        """Watch until ``stop`` (0) or until a queue fails (1, after ``--exec``)."""
        period = self.options.period
        watchdog = self.notifier.watchdog
        tick = min(period, watchdog / 2) if watchdog else period
        while True:
            try:
                await asyncio.wait_for(stop.wait(), tick)
                line, _ = self._describe(self.clock())
                self.out.end(line)
                return 0
            except TimeoutError:
                pass
            now = self.clock()
            line, state = self._describe(now)
            failed = [
                w
                for w in self.watched.values()
                if w.missed(now, period) >= self.options.fail_missed
            ]
            if not failed:
                self.out.show(line, state)
                self.notifier.alive(line)
                continue
            self.out.end(line)
            self.notifier.status(line)
            if self.options.command:
                await self._run_command([w.queue for w in failed], line)
            if not self.options.keep_running:
                return 1
            for w in failed:
                w.last = now  # count the periods again from here

    async def _run_command(self, queues: list[str], status: str) -> None:
        env = {
            **os.environ,
            "MSGFLO_MONITOR_QUEUES": ",".join(queues),
            "MSGFLO_MONITOR_STATUS": status,
        }
        assert self.options.command is not None
        process = await asyncio.create_subprocess_shell(self.options.command, env=env)
        code = await process.wait()
        if code:
            print(f"msgflo-monitor: --exec command exited with {code}", file=sys.stderr)
