"""What a participant counts about itself, and the report it sends about it.

Counting sits on every message's path, so it is kept to integer increments and one ``bisect``
into fixed histogram buckets: no allocation per message, no lock (each counter has one writer:
the event loop, or the legacy worker thread for processing times).  Counters only grow; the
coordinator turns the difference between two reports into rates and recent percentiles, so a
lost report costs resolution, never correctness.

Report, published every :data:`DEFAULT_INTERVAL` seconds with ``send_raw(QueueKind.OUT,
FIGURES_CHANNEL, ...)`` (a broadcast channel nothing of the original listens to)::

    {"protocol": "msgflo", "command": "figures", "payload": {
        "id", "role", "component", "time": epoch s, "interval": s,
        "inports": {PORT: {"queue", "received", "held": int | null}},
        "outports": {PORT: {"queue", "sent"}},
        "processing": {"bounds": [s, ...], "counts": [int, ...], "sum": s},
        "errors": int, "nacks": int}}

``held`` is the number of deliveries of that inport waiting inside the participant's client
(MQTT and core NATS have no broker-side queue: this is their backlog).
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FIGURES_CHANNEL = "msgflo/figures"
PROTOCOL = "msgflo"
DEFAULT_INTERVAL = 1.0

BOUNDS: tuple[float, ...] = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""Upper bounds (seconds) of the processing-time buckets; one more bucket holds the rest."""


def reporting_interval() -> float | None:
    """``MSGFLO_FIGURES``: ``0`` turns counting and reporting off, a number of seconds sets the
    interval; unset means every :data:`DEFAULT_INTERVAL` seconds."""
    raw = os.environ.get("MSGFLO_FIGURES", "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"MSGFLO_FIGURES={raw!r} is not a number of seconds (0 turns reporting off)"
        ) from None
    return value if value > 0 else None


class Histogram:
    """Fixed buckets: an observation is one ``bisect`` and two additions."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = BOUNDS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds


def percentile(bounds: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a bucketed distribution, interpolated inside its bucket;
    ``None`` without observations.  The overflow bucket reports its lower bound."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = bounds[index - 1] if index > 0 else 0.0
            if index >= len(bounds):
                return low
            high = bounds[index]
            return low + (high - low) * max(rank - seen, 0.0) / count
        seen += count
    return bounds[-1]


class PortCount:
    """One port's counter; handlers hold it directly, so counting needs no lookup."""

    __slots__ = ("count", "queue")

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.count = 0


@dataclass(slots=True)
class ParticipantFigures:
    """The counters of one participant (all of its ports)."""

    inports: dict[str, PortCount] = field(default_factory=dict)
    outports: dict[str, PortCount] = field(default_factory=dict)
    processing: Histogram = field(default_factory=Histogram)
    errors: int = 0
    nacks: int = 0

    @classmethod
    def of(cls, definition: Mapping[str, Any]) -> ParticipantFigures:
        def ports(kind: str) -> dict[str, PortCount]:
            return {str(p["id"]): PortCount(str(p["queue"])) for p in definition.get(kind, [])}

        return cls(ports("inports"), ports("outports"))

    def report(
        self, definition: Mapping[str, Any], now: float, interval: float, held: Iterable[int | None]
    ) -> dict[str, Any]:
        """The report envelope; ``held`` gives each inport's backlog, in inport order."""
        payload = {
            "id": definition["id"],
            "role": definition["role"],
            "component": definition.get("component", definition["role"]),
            "time": now,
            "interval": interval,
            "inports": {
                port: {"queue": c.queue, "received": c.count, "held": h}
                for (port, c), h in zip(self.inports.items(), held, strict=True)
            },
            "outports": {
                port: {"queue": c.queue, "sent": c.count} for port, c in self.outports.items()
            },
            "processing": {
                "bounds": list(self.processing.bounds),
                "counts": list(self.processing.counts),
                "sum": self.processing.sum,
            },
            "errors": self.errors,
            "nacks": self.nacks,
        }
        return {"protocol": PROTOCOL, "command": "figures", "payload": payload}


@dataclass(slots=True)
class Report:
    """A received report, checked: what the coordinator keeps per participant instance."""

    id: str
    role: str
    time: float
    interval: float
    received: dict[str, int]
    held: dict[str, int | None]
    sent: dict[str, int]
    queues: dict[str, str]
    """Inport name to its queue (for matching backlogs to edges)."""
    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    seconds: float
    errors: int
    nacks: int

    @classmethod
    def parse(cls, data: Any) -> Report | None:
        """``None`` for anything that is not a well-formed figures report."""
        if not isinstance(data, Mapping) or data.get("command") != "figures":
            return None
        p = data.get("payload")
        if data.get("protocol") != PROTOCOL or not isinstance(p, Mapping):
            return None
        try:
            inports = dict(p.get("inports") or {})
            outports = dict(p.get("outports") or {})
            processing = p.get("processing") or {}
            bounds = tuple(float(b) for b in processing.get("bounds", ()))
            counts = tuple(int(c) for c in processing.get("counts", ()))
            if counts and len(counts) != len(bounds) + 1:
                return None
            return cls(
                id=str(p["id"]),
                role=str(p["role"]),
                time=float(p["time"]),
                interval=float(p.get("interval") or DEFAULT_INTERVAL),
                received={str(k): int(v["received"]) for k, v in inports.items()},
                held={
                    str(k): (int(v["held"]) if v.get("held") is not None else None)
                    for k, v in inports.items()
                },
                sent={str(k): int(v["sent"]) for k, v in outports.items()},
                queues={str(k): str(v.get("queue", "")) for k, v in inports.items()},
                bounds=bounds,
                counts=counts,
                seconds=float(processing.get("sum", 0.0)),
                errors=int(p.get("errors", 0)),
                nacks=int(p.get("nacks", 0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
