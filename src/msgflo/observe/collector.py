"""The coordinator's side of participant reports: the recent reports of every instance.

Rates and recent processing times come from the difference between reports, so they survive
lost reports and restarts (a counter that went backwards starts a new series).  An instance
whose reports stop is *stale* after :data:`STALE_PERIODS` of its own interval; it is forgotten
after :data:`FORGET_AFTER` seconds of silence.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from msgflo.observe.figures import FIGURES_CHANNEL, Report
from msgflo.transport import Broker, Message, TransportError

log = logging.getLogger(__name__)

STALE_PERIODS = 3.0
STALE_GRACE = 1.0
FORGET_AFTER = 600.0
WINDOW = 10.0
"""Seconds over which recent processing times are taken."""
HISTORY = 64


@dataclass(slots=True)
class Track:
    """The reports of one participant instance, newest last."""

    reports: deque[Report] = field(default_factory=lambda: deque(maxlen=HISTORY))
    arrived: float = 0.0
    """When the newest report arrived, by this process's clock (reporters' clocks may differ)."""

    @property
    def latest(self) -> Report:
        return self.reports[-1]

    def stale(self, now: float) -> bool:
        return now - self.arrived > STALE_PERIODS * self.latest.interval + STALE_GRACE

    def _pair(self) -> tuple[Report, Report] | None:
        if len(self.reports) < 2:
            return None
        return self.reports[-2], self.reports[-1]

    def rate(self, kind: str, port: str) -> float | None:
        """Messages per second on ``port`` (``received`` or ``sent``) between the last two
        reports; ``None`` until there are two."""
        pair = self._pair()
        if pair is None:
            return None
        before, after = pair
        then = getattr(before, kind).get(port)
        now = getattr(after, kind).get(port)
        elapsed = after.time - before.time
        if then is None or now is None or elapsed <= 0 or now < then:
            return None
        return float(now - then) / elapsed

    def recent_counts(self, horizon: float) -> tuple[int, ...]:
        """Processing-time bucket counts since the report nearest ``horizon`` seconds ago."""
        latest = self.latest
        base = None
        for report in self.reports:
            if latest.time - report.time <= horizon:
                base = report
                break
        if base is None or base is latest or len(base.counts) != len(latest.counts):
            return ()
        delta = tuple(a - b for a, b in zip(latest.counts, base.counts, strict=True))
        return delta if min(delta, default=0) >= 0 else ()


class Collector:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.tracks: dict[str, Track] = {}
        self.listening = False

    async def start(self) -> None:
        """Listen for reports; a transport without broadcast channels leaves only the
        broker-side figures."""
        try:
            await self.broker.subscribe_broadcast(FIGURES_CHANNEL, self._on_report)
        except TransportError as exc:
            log.info("participant figures unavailable: %s", exc)
            return
        self.listening = True

    async def stop(self) -> None:
        if self.listening:
            self.listening = False
            with contextlib.suppress(TransportError):
                await self.broker.unsubscribe_broadcast(FIGURES_CHANNEL)

    async def _on_report(self, message: Message) -> None:
        self.take(Report.parse(message.data), time.time())

    def take(self, report: Report | None, now: float) -> None:
        if report is None:
            return
        track = self.tracks.get(report.id)
        if track is None:
            track = self.tracks[report.id] = Track()
        elif report.time <= track.latest.time:
            return  # a late or repeated report
        elif any(report.received.get(p, 0) < n for p, n in track.latest.received.items()):
            track.reports.clear()  # the counters started over (a new process with the same id)
        track.reports.append(report)
        track.arrived = now

    def forget_silent(self, now: float) -> None:
        for key in [k for k, t in self.tracks.items() if now - t.arrived > FORGET_AFTER]:
            del self.tracks[key]

    def of_role(self, role: str) -> list[Track]:
        return [t for t in self.tracks.values() if t.latest.role == role]

    def by_role(self) -> dict[str, list[Track]]:
        grouped: dict[str, list[Track]] = {}
        for track in self.tracks.values():
            grouped.setdefault(track.latest.role, []).append(track)
        return grouped


def summed(values: Iterable[float | None]) -> float | None:
    """The sum of what is known; ``None`` when nothing is."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None
