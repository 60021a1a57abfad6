"""The hand-written reading of docs/performance.md never states a verdict of its own: it
quotes the generated Targets table, and a quote that contradicts the table is caught."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import BEGIN, END, READING, check_reading, generated_targets, render

ROOT = Path(__file__).resolve().parents[2]


def data(memory_rate: float, chain_rate: float) -> dict[str, Any]:
    def relay(variant: str, rate: float) -> dict[str, Any]:
        throughput = {"median": rate, "min": rate, "max": rate, "n": 1}
        return {
            "scenario": "relay",
            "variant": variant,
            "impl": "ours-async",
            "metrics": {"throughput": throughput},
            "note": "",
        }

    return {
        "quick": True,
        "seconds": 1.0,
        "limits": {
            "repeats": 1,
            "messages": 10,
            "seconds": 1,
            "warmup": 1,
            "latency_messages": 1,
            "latency_seconds": 1,
        },
        "machine": {
            "time": "now",
            "cores": 2,
            "cpu": "cpu",
            "memory_gb": 1,
            "os": "os",
            "python": "3",
            "uvloop": "-",
            "node": "-",
            "packages": {},
        },
        "brokers": {"rabbitmq": "-", "mosquitto": "-", "amqtt": "-"},
        "results": [relay("memory N=1", memory_rate), relay("rabbitmq N=1", chain_rate)],
    }


def page(results: dict[str, Any], reading: str) -> str:
    return f"# Performance\n\n{BEGIN}\n{render(results)}\n{END}\n\n{READING}\n\n{reading}\n"


MEMORY = "memory relay (ours-async) ≥ 50,000 msg/s"
RABBIT = "RabbitMQ relay, at-least-once: ≥ 10,000 msg/s, ≥ 5x bare, ≥ 100x original"


def test_the_generator_writes_the_verdicts_the_check_reads() -> None:
    targets = generated_targets(page(data(90_000, 7_500), ""))
    assert targets == {MEMORY: True, RABBIT: False}


def test_a_reading_that_quotes_the_table_passes() -> None:
    reading = f"- `{MEMORY}` (table: yes): 90,000 msg/s.\n- `{RABBIT}` (table: no): 7,500 msg/s."
    assert check_reading(page(data(90_000, 7_500), reading)) == []


def test_a_quote_contradicting_the_table_is_caught() -> None:
    reading = f"- `{RABBIT}` (table: yes): close enough."
    assert check_reading(page(data(90_000, 7_500), reading)) == [
        f"says {RABBIT!r} is yes; the table says the opposite"
    ]


def test_a_verdict_in_free_text_is_caught() -> None:
    reading = "- **RabbitMQ ≥ 10,000 msg/s: met by the relay**, not showable in the chain."
    assert check_reading(page(data(90_000, 7_500), reading)) == [
        "says 'met' outside a quoted verdict of the table"
    ]


def test_a_quote_of_a_row_the_table_lacks_is_caught() -> None:
    reading = "- `latency per hop below 1 ms` (table: yes)."
    problems = check_reading(page(data(90_000, 7_500), reading))
    assert problems == [
        "quotes 'latency per hop below 1 ms', which is not a row of the generated Targets table"
    ]


def test_the_performance_page_reading_quotes_only_its_table() -> None:
    assert check_reading((ROOT / "docs" / "performance.md").read_text()) == []
