"""The figures as Prometheus metrics (names and labels: docs/observing.md).

Rendered from the observer's latest snapshot and the participants' cumulative counters, on a
private registry, so a scrape costs no broker request and never touches the process-wide
default registry of an application that embeds the runtime.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from msgflo.observe.network import NetworkObserver

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

EXPOSED_BOUNDS = (0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0)
"""The histogram buckets a scrape shows (a subset of the reported ones: fewer lines per role,
and text exposition costs per line)."""


class _Figures(Collector):
    def __init__(self, observer: NetworkObserver) -> None:
        self.observer = observer

    def collect(self) -> Iterator[Metric]:
        snapshot = self.observer.snapshot
        nodes = snapshot.get("nodes", [])
        tracks = self.observer.collector.by_role()
        received = CounterMetricFamily(
            "msgflo_messages_in", "Messages taken from an inport", labels=("role", "port")
        )
        sent = CounterMetricFamily(
            "msgflo_messages_out", "Messages sent on an outport", labels=("role", "port")
        )
        errors = CounterMetricFamily(
            "msgflo_errors", "Messages whose processing raised", labels=("role",)
        )
        nacks = CounterMetricFamily("msgflo_nacks", "Messages nacked", labels=("role",))
        processing = HistogramMetricFamily(
            "msgflo_processing_seconds", "Time to process one message", labels=("role",)
        )
        for role, role_tracks in sorted(tracks.items()):
            latest = [t.latest for t in role_tracks]
            for port in sorted({p for r in latest for p in r.received}):
                received.add_metric((role, port), sum(r.received.get(port, 0) for r in latest))
            for port in sorted({p for r in latest for p in r.sent}):
                sent.add_metric((role, port), sum(r.sent.get(port, 0) for r in latest))
            errors.add_metric((role,), sum(r.errors for r in latest))
            nacks.add_metric((role,), sum(r.nacks for r in latest))
            bounds = latest[0].bounds
            same = [r for r in latest if r.bounds == bounds and r.counts]
            if same:
                counts = [sum(c) for c in zip(*(r.counts for r in same), strict=True)]
                processing.add_metric(
                    (role,), _buckets(bounds, counts), sum(r.seconds for r in same)
                )
        yield from (received, sent, errors, nacks, processing)

        rate = GaugeMetricFamily(
            "msgflo_port_rate",
            "Messages per second on a port",
            labels=("role", "port", "direction"),
        )
        depth = GaugeMetricFamily(
            "msgflo_queue_depth", "Messages waiting in a queue", labels=("queue", "role", "port")
        )
        instances = GaugeMetricFamily("msgflo_instances", "Live participants", labels=("role",))
        restarts = CounterMetricFamily(
            "msgflo_restarts", "Participant processes restarted", labels=("role",)
        )
        last_seen = GaugeMetricFamily(
            "msgflo_last_seen_timestamp_seconds", "Last sign of life", labels=("role",)
        )
        stale = GaugeMetricFamily("msgflo_stale", "1 when reports stopped", labels=("role",))
        dead = GaugeMetricFamily(
            "msgflo_dead_letters", "Messages in dead-letter queues", labels=("role",)
        )
        for node in nodes:
            role = node["name"]
            for port in node["inports"]:
                if port["rate"] is not None:
                    rate.add_metric((role, port["id"], "in"), port["rate"])
                if port["depth"] is not None:
                    depth.add_metric((port["queue"], role, port["id"]), port["depth"])
            for port in node["outports"]:
                if port["rate"] is not None:
                    rate.add_metric((role, port["id"], "out"), port["rate"])
            instances.add_metric((role,), node["instances"])
            restarts.add_metric((role,), node["restarts"])
            if node["last_seen"] is not None:
                last_seen.add_metric((role,), node["last_seen"])
            stale.add_metric((role,), 1.0 if node["stale"] else 0.0)
            dead.add_metric((role,), node["dead_letters"])
        yield from (rate, depth, instances, restarts, last_seen, stale, dead)

        edge_rate = GaugeMetricFamily(
            "msgflo_edge_rate", "Messages per second along an edge", labels=("edge",)
        )
        edge_depth = GaugeMetricFamily(
            "msgflo_edge_queue_depth", "Messages waiting at an edge's target", labels=("edge",)
        )
        edge_state = GaugeMetricFamily(
            "msgflo_edge_state", "1 for the edge's wiring state", labels=("edge", "state")
        )
        stalled = GaugeMetricFamily("msgflo_edge_stalled", "1 when stalled", labels=("edge",))
        abnormal = GaugeMetricFamily(
            "msgflo_edge_abnormal", "1 when the rate is abnormally high", labels=("edge",)
        )
        for edge in snapshot.get("edges", []):
            label = edge["id"]
            if edge["rate"] is not None:
                edge_rate.add_metric((label,), edge["rate"])
            if edge["depth"] is not None:
                edge_depth.add_metric((label,), edge["depth"])
            edge_state.add_metric((label, edge["state"]), 1.0)
            stalled.add_metric((label,), 1.0 if edge["stalled"] else 0.0)
            abnormal.add_metric((label,), 1.0 if edge["abnormal"] else 0.0)
        yield from (edge_rate, edge_depth, edge_state, stalled, abnormal)


def _buckets(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    """Cumulative counts at the exposed bounds that the reported bounds contain."""
    cumulative, at = 0, {}
    for bound, count in zip(bounds, counts, strict=False):
        cumulative += count
        at[bound] = cumulative
    shown = [(repr(b), float(at[b])) for b in EXPOSED_BOUNDS if b in at]
    return [*shown, ("+Inf", float(sum(counts)))]


def registry_for(observer: NetworkObserver) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(observer))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
