"""The picture of a running graph: every node, port and edge with its figures, once a second.

Built from three sources: the coordinator (graph, wiring state, instances, restarts, when each
participant last announced itself), participant reports (:mod:`.collector`) and the broker's
queue depths (:mod:`.depth`).  Each tick makes one snapshot (the ``/api/network`` document); the
HTTP endpoints and protocol clients read the latest one, so serving it costs no broker request.

Flags, per edge (see docs/observing.md):

* *stalled*: its queue held messages for the last :data:`STALL_AFTER` seconds without getting
  shorter and nothing was consumed from it meanwhile; or, where the depth is unknown, the
  source sent throughout that time while the target took nothing.
* *abnormal*: its rate is above :data:`ABNORMAL_FACTOR` times its average over the previous
  :data:`AVERAGE_OVER` seconds (at least :data:`ABNORMAL_MIN_HISTORY` seconds of history) and
  at least :data:`ABNORMAL_MIN_RATE` messages per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from msgflo.coordinator import Coordinator, Event, EventKind
from msgflo.coordinator.registry import Instance
from msgflo.observe.collector import WINDOW, Collector, Track, summed
from msgflo.observe.depth import DepthSource, Sample
from msgflo.observe.figures import percentile
from msgflo.transport import Address
from msgflo.wiring import VIRTUAL_COMPONENTS, Link, Planned, Status

log = logging.getLogger(__name__)

INTERVAL = 1.0
STALL_AFTER = 5.0
AVERAGE_OVER = 60.0
ABNORMAL_FACTOR = 3.0
ABNORMAL_MIN_RATE = 5.0
ABNORMAL_MIN_HISTORY = 10.0

STATES = {
    Status.BOUND: "wired",
    Status.CONNECTED: "wired",
    Status.PENDING: "pending",
    Status.ERROR: "error",
}


def edge_label(edge: Link) -> str:
    return f"{edge.src.process}.{edge.src.port} -> {edge.tgt.process}.{edge.tgt.port}"


@dataclass(slots=True)
class _EdgeHistory:
    """Per edge: (time, depth, consumed so far, source rate) and (time, rate) samples."""

    samples: deque[tuple[float, int | None, int | None, float | None]] = field(
        default_factory=lambda: deque(maxlen=int(STALL_AFTER / INTERVAL) * 4 + 4)
    )
    rates: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=int(AVERAGE_OVER / INTERVAL) + 2)
    )

    def stalled(self, now: float) -> bool:
        window = [s for s in self.samples if now - s[0] <= STALL_AFTER + INTERVAL / 2]
        if not window or now - window[0][0] < STALL_AFTER - INTERVAL / 2:
            return False
        first, last = window[0], window[-1]
        consumed = None if first[2] is None or last[2] is None else max(last[2] - first[2], 0)
        if consumed:
            return False
        depths = [s[1] for s in window]
        if all(d is not None for d in depths):
            known = [d for d in depths if d is not None]
            return min(known) > 0 and known[-1] >= known[0]
        return consumed == 0 and all((s[3] or 0) > 0 for s in window)

    def abnormal(self, now: float, rate: float | None) -> bool:
        earlier = [r for t, r in self.rates if now - t <= AVERAGE_OVER and t < now]
        if rate is not None:
            self.rates.append((now, rate))
        if rate is None or rate < ABNORMAL_MIN_RATE or not earlier:
            return False
        span = now - min(t for t, _ in self.rates)
        if span < ABNORMAL_MIN_HISTORY:
            return False
        average = sum(earlier) / len(earlier)
        return rate > ABNORMAL_FACTOR * average


class NetworkObserver:
    """Keeps :attr:`snapshot` current while started."""

    def __init__(
        self,
        coordinator: Coordinator,
        graph_name: Callable[[], str | None],
        *,
        management_url: str | None = None,
        interval: float = INTERVAL,
    ) -> None:
        self.coordinator = coordinator
        self.graph_name = graph_name
        self.interval = interval
        self.collector = Collector(coordinator.broker)
        self.depths = DepthSource(coordinator.broker, management_url)
        self.restarts: dict[str, int] = {}
        self.samples: dict[str, Sample] = {}
        self.snapshot: dict[str, Any] = {}
        self.poll_seconds = 0.0
        """CPU seconds the last depth poll took in this process (for the benchmark)."""
        self._edges: dict[str, _EdgeHistory] = {}
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[dict[str, Any]], Any]] = []

    def on_snapshot(self, listener: Callable[[dict[str, Any]], Any]) -> None:
        """Call ``listener(snapshot)`` after every tick (a coroutine result is awaited)."""
        self._listeners.append(listener)

    async def start(self) -> None:
        self.coordinator.add_listener(self._on_event)
        await self.collector.start()
        await self.tick()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self.coordinator.remove_listener(self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.collector.stop()
        await self.depths.close()

    def _on_event(self, event: Event) -> None:
        if event.kind is EventKind.PROCESS_EXITED and event.role:
            self.restarts[event.role] = self.restarts.get(event.role, 0) + 1

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception:  # a bad tick must not end observing
                log.exception("observing the network failed")

    async def tick(self) -> None:
        now = time.time()
        self.collector.forget_silent(now)
        queues = sorted(self._queues())
        started = time.process_time()
        self.samples = await self.depths.poll(queues)
        self.poll_seconds = time.process_time() - started
        self.snapshot = self.build(now)
        for listener in list(self._listeners):
            result = listener(self.snapshot)
            if asyncio.iscoroutine(result):
                await result

    # -- what to ask the broker ----------------------------------------------------------------

    @staticmethod
    def _ports(definition: dict[str, Any] | None, kind: str) -> dict[str, str | None]:
        return {
            str(p["id"]): str(p["queue"])
            for p in (definition or {}).get(kind, [])
            if isinstance(p.get("queue"), str)
        }

    def _dead_letter_queues(self) -> dict[str, str]:
        """Inqueue to the dead-letter queue a round-robin binding gives it."""
        return {
            p.binding.tgt: p.binding.deadletter
            for p in self.coordinator.wiring.values()
            if p.binding is not None and p.binding.deadletter
        }

    def _queues(self) -> set[str]:
        wanted: set[str] = set()
        definitions = self.coordinator.registry.definitions()
        for name, role in self.coordinator.nodes.items():
            if role.component not in VIRTUAL_COMPONENTS:
                ports = self._ports(definitions.get(name), "inports")
                wanted.update(queue for queue in ports.values() if queue)
        wanted.update(self._dead_letter_queues().values())
        for planned in self.coordinator.wiring.values():
            if planned.binding is not None and planned.binding.tgt:
                wanted.add(planned.binding.tgt)
        return wanted

    # -- the snapshot ---------------------------------------------------------------------------

    def _depth(self, queue: str | None, tracks: list[Track], port: str | None) -> int | None:
        """The broker's depth, else the backlog our participants hold for that port."""
        sample = self.samples.get(queue) if queue else None
        if sample is not None and sample.depth is not None:
            return sample.depth.messages
        if port is None:
            return None
        return _as_int(summed(t.latest.held.get(port) for t in tracks))

    def _graph_ports(self) -> dict[tuple[str, str], list[str]]:
        """Ports the graph names, by (node, "in"/"out"): shown with ``queue: null`` until the
        participant announces them, so a pending node still has its ports."""
        named: dict[tuple[str, str], list[str]] = {}
        for edge in self.coordinator.edges:
            named.setdefault((edge.src.process, "out"), []).append(edge.src.port)
            named.setdefault((edge.tgt.process, "in"), []).append(edge.tgt.port)
        return named

    def build(self, now: float) -> dict[str, Any]:
        coordinator = self.coordinator
        registry = coordinator.registry
        by_role = self.collector.by_role()
        definitions = registry.definitions()
        instances_of: dict[str, list[Instance]] = {}
        for instance in registry.instances.values():
            instances_of.setdefault(instance.role, []).append(instance)
        fresh = {role: [t for t in ts if not t.stale(now)] for role, ts in by_role.items()}
        dead = self._dead_letter_queues()
        nodes = []
        consumed: dict[tuple[str, str], int | None] = {}
        sending: dict[tuple[str, str], float | None] = {}
        receiving: dict[tuple[str, str], float | None] = {}
        named = self._graph_ports()
        for name, role in coordinator.nodes.items():
            virtual = role.component in VIRTUAL_COMPONENTS
            tracks, live = by_role.get(name, []), fresh.get(name, [])
            instances = instances_of.get(name, [])
            seen = [i.last_seen for i in instances] + [t.latest.time for t in tracks]
            gone = {i.id for i in instances if i.gone}
            inports: list[dict[str, Any]] = []
            dead_letters = 0
            inqueues = {} if virtual else self._ports(definitions.get(name), "inports")
            for port in named.get((name, "in"), ()):
                inqueues.setdefault(port, None)
            for port, queue in inqueues.items():
                sample = self.samples.get(queue) if queue else None
                rate = summed(t.rate("received", port) for t in live)
                if rate is None and sample is not None:
                    rate = sample.deliver_rate
                receiving[(name, port)] = rate
                consumed[(name, port)] = (
                    _as_int(summed(t.latest.received.get(port) for t in tracks)) if tracks else None
                )
                dead_letters += self._depth(dead.get(queue) if queue else None, [], None) or 0
                inports.append(
                    {
                        "id": port,
                        "queue": queue,
                        "rate": _round(rate),
                        "depth": self._depth(queue, live, port),
                    }
                )
            outports = []
            outqueues = {} if virtual else self._ports(definitions.get(name), "outports")
            for port in named.get((name, "out"), ()):
                outqueues.setdefault(port, None)
            for port, queue in outqueues.items():
                rate = summed(t.rate("sent", port) for t in live)
                sending[(name, port)] = rate
                outports.append({"id": port, "queue": queue, "rate": _round(rate)})
            nodes.append(
                {
                    "name": name,
                    "component": role.component,
                    "instances": 0 if virtual else len(instances) - len(gone),
                    "restarts": self.restarts.get(name, 0),
                    "last_seen": max(seen) if seen else None,
                    "stale": any(t.stale(now) and t.latest.id not in gone for t in tracks),
                    "processing_ms": _processing(tracks),
                    "errors": sum(t.latest.errors for t in tracks),
                    "nacks": sum(t.latest.nacks for t in tracks),
                    "dead_letters": dead_letters,
                    "inports": inports,
                    "outports": outports,
                }
            )
        edges = []
        incoming: dict[tuple[str, str], int] = {}
        for edge in coordinator.edges:
            key = (edge.tgt.process, edge.tgt.port)
            incoming[key] = incoming.get(key, 0) + 1
        planned_of: dict[Link, Planned] = {
            e: p for p in coordinator.wiring.values() for e in p.edges
        }
        for edge in coordinator.edges:
            label = edge_label(edge)
            planned = planned_of.get(edge)
            state = STATES[planned.status] if planned is not None else "pending"
            src, tgt = (edge.src.process, edge.src.port), (edge.tgt.process, edge.tgt.port)
            target = self._ports(definitions.get(tgt[0]), "inports").get(tgt[1])
            if target is None and planned is not None and planned.binding is not None:
                target = planned.binding.tgt or None
            rate = sending.get(src)
            if rate is None and incoming.get(tgt) == 1:
                rate = receiving.get(tgt)
            sample = self.samples.get(target) if target else None
            if rate is None and sample is not None:
                rate = sample.publish_rate
            depth = self._depth(target, fresh.get(tgt[0], []), tgt[1])
            history = self._edges.setdefault(label, _EdgeHistory())
            history.samples.append((now, depth, consumed.get(tgt), sending.get(src)))
            edges.append(
                {
                    "id": label,
                    "src": {"node": src[0], "port": src[1]},
                    "tgt": {"node": tgt[0], "port": tgt[1]},
                    "state": state,
                    "rate": _round(rate),
                    "depth": depth,
                    "stalled": state == "wired" and history.stalled(now),
                    "abnormal": history.abnormal(now, rate),
                    "error": planned.detail if planned and state == "error" else None,
                    "queue": target,
                }
            )
        for label in set(self._edges) - {e["id"] for e in edges}:
            del self._edges[label]
        return {
            "time": now,
            "graph": self.graph_name(),
            "broker": Address.parse(coordinator.options.broker_url).redacted(),
            "figures": {
                "reports": self.collector.listening,
                "depth": "management"
                if self.depths.management_url and not self.depths.management_error
                else "broker",
                "management_error": self.depths.management_error,
            },
            "nodes": nodes,
            "edges": edges,
        }


def _processing(tracks: list[Track]) -> dict[str, float] | None:
    """Percentiles in milliseconds over the last :data:`WINDOW` seconds, else since start."""
    if not tracks:
        return None
    bounds = tracks[0].latest.bounds
    same = [t for t in tracks if t.latest.bounds == bounds]
    recent = [t.recent_counts(WINDOW) for t in same]
    counts = _add([c for c in recent if c])
    if not sum(counts):
        counts = _add([t.latest.counts for t in same])
    if not sum(counts):
        return None
    return {
        name: round((percentile(bounds, counts, q) or 0.0) * 1000, 3)
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    }


def _add(series: list[tuple[int, ...]]) -> tuple[int, ...]:
    if not series:
        return ()
    return tuple(sum(column) for column in zip(*series, strict=True))


def _as_int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _round(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 3)
