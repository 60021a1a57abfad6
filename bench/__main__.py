"""``python -m bench``: run the benchmark scenarios and write the JSON and Markdown report.

Examples::

    python -m bench                                   # everything (about 20 minutes)
    python -m bench --quick --scenario relay --transport mosquitto
    python -m bench --scenario startup,footprint --out /tmp/r.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench import relay, report, scenarios
from bench.common import (
    MOSQUITTO,
    NATS,
    NATS_JETSTREAM,
    RABBITMQ,
    ROOT,
    Limits,
    Result,
    machine,
    processes,
)

RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "performance.md"
SCENARIOS = (
    "relay",
    "amqp_drain",
    "fanout",
    "pool",
    "startup",
    "discovery",
    "footprint",
    "recovery",
    "flood",
    "graph_parse",
    "schema",
)
TRANSPORTS = (
    "memory",
    "mosquitto",
    "rabbitmq",
    "amqtt",
    "nats",
    "nats-jetstream",
    "mosquitto-public",
    "rabbitmq-public",
)
DEFAULT_TRANSPORTS = TRANSPORTS[:6]
"""The ``-public`` targets run our relays with ``?fastpath=0`` (the libraries' public API)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--transport",
        default=",".join(DEFAULT_TRANSPORTS),
        help=f"relay chains on these, from: {', '.join(TRANSPORTS)} "
        f"(default: {', '.join(DEFAULT_TRANSPORTS)})",
    )
    parser.add_argument(
        "--impl",
        default=",".join(relay.IMPLS),
        help=f"implementations, from: {', '.join(relay.IMPLS)} (default: all)",
    )
    parser.add_argument("--relays", default="1,2,4", help="chain lengths (default: 1,2,4)")
    parser.add_argument(
        "--quick", action="store_true", help="seconds per scenario, one repetition (CI smoke)"
    )
    parser.add_argument("--out", type=Path, help="JSON file (default: bench/results/<time>.json)")
    parser.add_argument(
        "--docs",
        type=Path,
        help="Markdown file whose generated section is rewritten "
        "(default: docs/performance.md after a full run, none after a partial or --quick run)",
    )
    args = parser.parse_args(argv)
    args.scenarios = _choose(parser, "--scenario", args.scenario, SCENARIOS)
    args.transports = _choose(parser, "--transport", args.transport, TRANSPORTS)
    args.impls = _choose(parser, "--impl", args.impl, relay.IMPLS)
    try:
        args.chain_lengths = [int(n) for n in args.relays.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--relays {args.relays!r}: not a comma-separated list of numbers")
    if any(n < 1 for n in args.chain_lengths):
        parser.error("--relays: every chain needs at least one relay")
    return args


def _choose(
    parser: argparse.ArgumentParser, option: str, raw: str, known: Sequence[str]
) -> list[str]:
    chosen = [item.strip() for item in raw.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in known]
    if unknown:
        parser.error(f"{option}: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    return chosen


Runner = Callable[[], Awaitable[list[Result]]]


async def run(args: argparse.Namespace) -> dict[str, object]:
    limits = Limits.quick() if args.quick else Limits.full()
    results: list[Result] = []
    started = time.perf_counter()
    embedded: list[tuple[list[str], dict[str, str]]] = []
    if "amqtt" in args.transports and {"relay"} & set(args.scenarios):
        embedded = [([sys.executable, str(ROOT / "bench" / "embedded_broker.py")], {})]
    async with processes(embedded) as brokers:
        urls = {
            "memory": "memory://bench",
            "mosquitto": MOSQUITTO,
            "rabbitmq": RABBITMQ,
            "nats": NATS,
            "nats-jetstream": NATS_JETSTREAM,
            "mosquitto-public": f"{MOSQUITTO}?fastpath=0",
            "rabbitmq-public": f"{RABBITMQ}?fastpath=0",
            "amqtt": brokers[0].ready if brokers else "",
        }
        targets = [relay.Target(name, urls[name]) for name in args.transports]
        for name in args.scenarios:
            print(f"== {name}", file=sys.stderr, flush=True)
            for result in await scenarios.run(name, args, limits, targets):
                _show(result)
                results.append(result)
    return {
        "quick": args.quick,
        "limits": limits.__dict__,
        "machine": machine(),
        "brokers": await scenarios.broker_versions(),
        "seconds": round(time.perf_counter() - started, 1),
        "results": [r.to_json() for r in results],
    }


def _show(result: Result) -> None:
    line = f"  {result.scenario:9} {result.variant:24} {result.impl:20} "
    metrics = result.metrics
    if "throughput" in metrics:
        line += f"{metrics['throughput']['median']:10.0f} msg/s"
        latency = metrics.get("latency_ms")
        if latency:
            line += f"  p50 {latency['p50']:.2f} ms  p99 {latency['p99']:.2f} ms"
        if metrics.get("lost"):
            line += f"  lost {metrics['lost']}"
    else:
        line += " ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
        )
    if result.note:
        line += f"  ({result.note})"
    print(line, file=sys.stderr, flush=True)


def is_full(args: argparse.Namespace) -> bool:
    """Only a full run (every scenario, transport, implementation and chain length, not
    ``--quick``) rewrites the generated section of docs/performance.md by default: a partial
    run would drop the rows it did not measure."""
    return (
        not args.quick
        and args.scenarios == list(SCENARIOS)
        and args.transports == list(DEFAULT_TRANSPORTS)
        and args.impls == list(relay.IMPLS)
        and args.chain_lengths == [1, 2, 4]
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # The sink's paho thread must not wait 5 ms for the GIL to timestamp a message.
    sys.setswitchinterval(0.0005)
    data = asyncio.run(run(args))
    out = args.out or RESULTS / time.strftime("%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"results: {out}", file=sys.stderr)
    docs = args.docs or (DOCS if is_full(args) else None)
    if docs is not None:
        report.update(docs, data)
        print(f"report: {docs}", file=sys.stderr)


if __name__ == "__main__":
    main()
