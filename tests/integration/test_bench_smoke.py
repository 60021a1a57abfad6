"""``python -m bench --quick`` still runs and measures something plausible, so the benchmark
never rots between the runs that produce docs/performance.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.report import render
from tests.brokers import require_broker

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def run_bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def rows(data: dict[str, Any], scenario: str) -> dict[str, dict[str, Any]]:
    return {r["impl"]: r for r in data["results"] if r["scenario"] == scenario}


def test_relay_and_footprint_measure_plausible_numbers(tmp_path: Path) -> None:
    require_broker(1883, "Mosquitto")
    data = run_bench(
        tmp_path,
        "--scenario",
        "relay,graph_parse",
        "--transport",
        "memory,mosquitto",
        "--impl",
        "ours-async,ours-legacy,bare",
    )
    assert data["machine"]["cores"] >= 1
    assert data["brokers"]["mosquitto"]
    relays = [r for r in data["results"] if r["scenario"] == "relay"]
    measured = {(r["variant"], r["impl"]) for r in relays}
    assert measured == {
        ("memory N=1", "ours-async"),
        ("memory N=1", "ours-legacy"),
        ("mosquitto N=1", "ours-async"),
        ("mosquitto N=1", "ours-legacy"),
        ("mosquitto N=1", "bare"),
    }
    for row in relays:
        metrics = row["metrics"]
        assert 100 < metrics["throughput"]["median"] < 10_000_000, row
        assert metrics["lost"] == 0, row
        latency = metrics["latency_ms"]
        assert latency["received"] == latency["sent"] > 0, row
        assert 0 < latency["p50"] <= latency["p99"] < 1000, row
    parse = rows(data, "graph_parse")["ours"]["metrics"]["seconds"]
    assert 0 < parse["median"] < 10
    report = render(data)
    assert "| memory N=1 |" in report and "async / bare" in report


def test_rabbitmq_relay_is_at_least_once_and_startup_wires(tmp_path: Path) -> None:
    require_broker(5672, "RabbitMQ")
    require_broker(1883, "Mosquitto")
    data = run_bench(
        tmp_path,
        "--scenario",
        "relay,footprint",
        "--transport",
        "rabbitmq",
        "--impl",
        "ours-async",
    )
    row = rows(data, "relay")["ours-async"]
    assert row["metrics"]["throughput"]["median"] > 100
    assert row["metrics"]["lost"] == 0 and row["metrics"]["duplicates"] == 0
    footprint = [r for r in data["results"] if r["scenario"] == "footprint"]
    idle = [r for r in footprint if r["variant"].startswith("idle") and r["impl"] == "ours-async"]
    assert idle and all(5 < r["metrics"]["rss_mb"] < 500 for r in idle)
    coordinator = [r for r in footprint if r["variant"].startswith("coordinator")]
    assert coordinator and 5 < coordinator[0]["metrics"]["rss_mb"] < 1000
