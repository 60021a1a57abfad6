"""The rules behind the figures: percentiles from buckets, reports that are refused, counters
that start over, and when an edge counts as stalled or abnormal."""

from __future__ import annotations

from typing import Any

from msgflo.definition import normalize_definition
from msgflo.observe.collector import Collector, Track
from msgflo.observe.figures import BOUNDS, Histogram, ParticipantFigures, Report, percentile
from msgflo.observe.network import STALL_AFTER, _EdgeHistory


def test_percentiles_fall_in_the_bucket_of_the_observations() -> None:
    histogram = Histogram()
    for _ in range(90):
        histogram.observe(0.0004)  # the (0.00025, 0.0005] bucket
    for _ in range(10):
        histogram.observe(0.2)  # the (0.1, 0.25] bucket
    p50 = percentile(BOUNDS, histogram.counts, 0.5)
    p99 = percentile(BOUNDS, histogram.counts, 0.99)
    assert p50 is not None and 0.00025 <= p50 <= 0.0005
    assert p99 is not None and 0.1 <= p99 <= 0.25
    assert percentile(BOUNDS, [0] * (len(BOUNDS) + 1), 0.5) is None


def report(received: int, at: float, role: str = "r") -> Report:
    definition = normalize_definition({}, role)
    definition["id"] = f"{role}-1"
    figures = ParticipantFigures.of(definition)
    figures.inports["in"].count = received
    parsed = Report.parse(figures.report(definition, at, 1.0, [None]))
    assert parsed is not None
    return parsed


def test_rates_come_from_two_reports_and_restarted_counters_start_over() -> None:
    collector = Collector.__new__(Collector)
    collector.tracks = {}
    collector.take(report(100, 10.0), 10.0)
    assert collector.of_role("r")[0].rate("received", "in") is None
    collector.take(report(150, 12.0), 12.0)
    assert collector.of_role("r")[0].rate("received", "in") == 25.0
    collector.take(report(150, 11.0), 12.5)  # late: ignored
    collector.take(report(3, 13.0), 13.0)  # a restarted process: a new series
    track: Track = collector.of_role("r")[0]
    assert len(track.reports) == 1 and track.rate("received", "in") is None


def test_garbage_is_not_a_report() -> None:
    garbage: tuple[Any, ...] = (
        None,
        "x",
        {"protocol": "msgflo", "command": "figures"},
        {"payload": {}},
    )
    for data in garbage:
        assert Report.parse(data) is None
    bad: dict[str, Any] = {
        "protocol": "msgflo",
        "command": "figures",
        "payload": {"id": "a", "role": "a"},
    }
    bad["payload"]["time"] = "soon"
    assert Report.parse(bad) is None


def test_stalled_needs_a_full_window_of_an_unshrinking_queue_nobody_consumes() -> None:
    history = _EdgeHistory()
    for t in range(int(STALL_AFTER) + 1):
        history.samples.append((float(t), 5, 10, None))
    assert history.stalled(STALL_AFTER)
    consuming = _EdgeHistory()
    for t in range(int(STALL_AFTER) + 1):
        consuming.samples.append((float(t), 5, 10 + t, None))
    assert not consuming.stalled(STALL_AFTER)
    young = _EdgeHistory()
    young.samples.append((0.0, 5, 10, None))
    assert not young.stalled(1.0)
    unknown_depth = _EdgeHistory()
    for t in range(int(STALL_AFTER) + 1):
        unknown_depth.samples.append((float(t), None, 10, 50.0))
    assert unknown_depth.stalled(STALL_AFTER)


def test_abnormal_is_far_above_the_recent_average() -> None:
    history = _EdgeHistory()
    for t in range(30):
        assert not history.abnormal(float(t), 10.0)
    assert not history.abnormal(30.0, 25.0)
    assert history.abnormal(31.0, 100.0)
    quiet = _EdgeHistory()
    for t in range(30):
        quiet.abnormal(float(t), 0.1)
    assert not quiet.abnormal(30.0, 2.0)  # below the minimum rate worth flagging
