"""What observing costs (issue 12's targets), in one run:

* relay throughput with participant figures off (``MSGFLO_FIGURES=0``) and on (the default,
  a report a second), alternated so that both see the same machine load, per broker;
* ``GET /metrics`` of a 200-node network (a runtime on ``memory://`` with a report per node);
* depth polling of 200 RabbitMQ queues once a second (passive declares, and the management
  API): CPU seconds of this process per wall second.

``python -m bench.observe [--quick] [--out bench/kept/observe.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import relay
from bench.common import MOSQUITTO, RABBITMQ, Limits, machine, unique
from msgflo.coordinator import Coordinator, CoordinatorOptions
from msgflo.definition import normalize_definition
from msgflo.graph import parse_fbp
from msgflo.library import Library
from msgflo.observe.depth import DepthSource
from msgflo.observe.figures import ParticipantFigures
from msgflo.participant import Participant
from msgflo.runtime import MAIN_GRAPH, Access, Runtime, RuntimeOptions, serve
from msgflo.runtime.observe_api import observing
from msgflo.transport import Address, Message, QueueKind, get_broker, get_client
from msgflo.transport.memory import MemoryClient

NODES = 200
MANAGEMENT = "http://127.0.0.1:15672"


async def relay_cost(limits: Limits, rounds: int) -> list[dict[str, Any]]:
    rows = []
    for name, url in (
        ("memory", "memory://bench"),
        ("mosquitto", MOSQUITTO),
        ("rabbitmq", RABBITMQ),
    ):
        target = relay.Target(name, url)
        rates: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(rounds):
            for mode, value in (("off", "0"), ("on", "1")):
                os.environ["MSGFLO_FIGURES"] = value
                result = await relay.chain(target, "ours-async", 1, limits)
                rates[mode].append(result.metrics["throughput"]["median"])
                print(
                    f"  relay {name} figures {mode}: {rates[mode][-1]:.0f} msg/s", file=sys.stderr
                )
        os.environ.pop("MSGFLO_FIGURES", None)
        off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
        rows.append(
            {
                "broker": name,
                "off_msg_s": rates["off"],
                "on_msg_s": rates["on"],
                "cost_pct": round(100 * (off - on) / off, 2),
            }
        )
    return rows


class _Relay(Participant):
    inports = {"in": {"queue": "hot.IN"}}
    outports = {"out": {"queue": "hot.OUT"}}

    async def process(self, inport: str, msg: Message) -> None:
        await self.send("out", msg.data)


async def hot_path_cpu(messages: int, rounds: int) -> dict[str, Any]:
    """CPU microseconds per relayed message in this process (memory://, no other process):
    CPU time is far less disturbed by a busy machine than throughput is."""
    per: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(rounds):
        for mode, value in (("off", "0"), ("on", "1")):
            os.environ["MSGFLO_FIGURES"] = value
            url = f"memory://{unique('hot')}"
            client = get_client(url)
            assert isinstance(client, MemoryClient)
            await client.connect()
            participant = _Relay("hot")
            await participant.start(client)
            await client.create_queue(QueueKind.IN, "hot.SINK")
            client.hub.exchanges["hot.OUT"].add("hot.SINK")
            got = 0
            done = asyncio.Event()

            async def sink(message: Message, done: asyncio.Event = done) -> None:
                nonlocal got
                got += 1
                if got == messages:
                    done.set()

            await client.subscribe_to_queue("hot.SINK", sink)
            before = time.process_time()
            for i in range(messages):
                await client.send_raw(QueueKind.IN, "hot.IN", b"1")
                if i % 100 == 0:
                    await asyncio.sleep(0)
            await done.wait()
            per[mode].append(1e6 * (time.process_time() - before) / messages)
            await participant.stop()
            await client.disconnect()
    os.environ.pop("MSGFLO_FIGURES", None)
    off, on = statistics.median(per["off"]), statistics.median(per["on"])
    return {
        "messages": messages,
        "off_us_per_msg": per["off"],
        "on_us_per_msg": per["on"],
        "cost_pct": round(100 * (on - off) / off, 2),
    }


class _Quiet(MemoryClient):
    """Sends and settles nothing: what remains is the participant's own work per message."""

    async def send_raw(self, kind: QueueKind, name: str, body: bytes) -> None:
        return None

    async def subscribe_to_queue(self, name: str, handler: Any) -> None:
        return None


async def handler_cost(messages: int, rounds: int) -> dict[str, Any]:
    """Microseconds per message through the participant's handler (process, send, settle),
    best of ``rounds``: the best run is the one the busy machine disturbed least."""
    best: dict[str, float] = {}
    for mode, value in (("off", "0"), ("on", "1")) * 2:
        os.environ["MSGFLO_FIGURES"] = value
        client = _Quiet(Address.parse(f"memory://{unique('handler')}"))
        await client.connect()
        participant = _Relay("hot")
        await participant.start(client)
        handle = participant._handlers["in"]
        for _ in range(rounds):
            batch = [Message(queue="hot.IN", body=b"1", data=1) for _ in range(messages)]
            started = time.perf_counter()
            for message in batch:
                await handle(message)
            us = 1e6 * (time.perf_counter() - started) / messages
            best[mode] = min(best.get(mode, us), us)
        await participant.stop()
    os.environ.pop("MSGFLO_FIGURES", None)
    return {
        "messages": messages,
        "rounds": rounds,
        "off_us_per_msg": round(best["off"], 3),
        "on_us_per_msg": round(best["on"], 3),
        "added_us_per_msg": round(best["on"] - best["off"], 3),
    }


async def metrics_latency(requests: int) -> dict[str, Any]:
    """A runtime whose graph is a chain of 200 nodes, each announced and reporting."""
    url = f"memory://{unique('metrics')}"
    names = [f"n{i}" for i in range(NODES)]
    text = "\n".join(f"{a}(Relay) OUT -> IN {b}(Relay)" for a, b in itertools.pairwise(names))
    coordinator = Coordinator(
        get_broker(url), Library(), CoordinatorOptions(broker_url=url, start_participants=False)
    )
    await coordinator.start()
    runtime = Runtime(coordinator, Library(), RuntimeOptions(id="bench", access=Access()))
    runtime.add_graph(MAIN_GRAPH, parse_fbp(text))
    await runtime.start_network(MAIN_GRAPH)
    try:
        async with serve(runtime, "127.0.0.1", 0) as endpoint:
            state = observing(runtime)
            assert state is not None
            for name in names:
                definition = normalize_definition({"component": "Relay"}, name)
                await coordinator.observe(definition)
                figures = ParticipantFigures.of(definition)
                for port in figures.inports.values():
                    port.count = 1000
                for port in figures.outports.values():
                    port.count = 1000
                for _ in range(1000):
                    figures.processing.observe(0.0004)
                for t in (time.time() - 1, time.time()):
                    report = figures.report(definition, t, 1.0, [0])
                    await coordinator.broker.send_raw(
                        QueueKind.OUT, "msgflo/figures", json.dumps(report).encode()
                    )
            await asyncio.sleep(2.5)
            await state.observer.tick()
            tick_started = time.perf_counter()
            await state.observer.tick()
            tick_ms = (time.perf_counter() - tick_started) * 1000
            times, size = [], 0
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{endpoint.port}/metrics") as r:
                    await r.read()  # a scraper is now known: ticks render ahead of it
                render_started = time.perf_counter()
                await state.observer.tick()
                render_ms = (time.perf_counter() - render_started) * 1000 - tick_ms
                for _ in range(requests):
                    started = time.perf_counter()
                    async with session.get(f"http://127.0.0.1:{endpoint.port}/metrics") as r:
                        body = await r.read()
                    times.append((time.perf_counter() - started) * 1000)
                    size = len(body)
                    await asyncio.sleep(0.05)  # scrapes spread over several ticks
            nodes = len(state.observer.snapshot["nodes"])
            reporting = sum(1 for n in state.observer.snapshot["nodes"] if n["processing_ms"])
    finally:
        await runtime.close()
        await coordinator.stop()
    times.sort()
    return {
        "nodes": nodes,
        "reporting_nodes": reporting,
        "requests": requests,
        "bytes": size,
        "p50_ms": round(statistics.median(times), 2),
        "max_ms": round(times[-1], 2),
        "tick_ms": round(tick_ms, 2),
        "render_ms_per_tick": round(render_ms, 2),
    }


async def depth_polling(seconds: float) -> list[dict[str, Any]]:
    broker = get_broker(RABBITMQ)
    await broker.connect()
    base = unique("depth")
    queues = [f"{base}.q{i}.IN" for i in range(NODES)]
    rows = []
    try:
        for queue in queues:
            await broker.create_queue(QueueKind.IN, queue)
        for mode, management in (("passive declare", None), ("management API", MANAGEMENT)):
            source = DepthSource(broker, management)
            cpu = 0.0
            polls, known = 0, 0
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                tick = time.monotonic()
                before = time.process_time()
                samples = await source.poll(queues)
                cpu += time.process_time() - before
                polls += 1
                known = sum(1 for s in samples.values() if s.depth is not None)
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            wall = time.monotonic() - started
            await source.close()
            rows.append(
                {
                    "mode": mode,
                    "queues": len(queues),
                    "polls": polls,
                    "known": known,
                    "cpu_pct_of_one_core": round(100 * cpu / wall, 2),
                    "cpu_ms_per_poll": round(1000 * cpu / polls, 2),
                    "management_error": source.management_error,
                }
            )
    finally:
        for queue in queues:
            await broker.remove_queue(QueueKind.IN, queue)
        await broker.disconnect()
    return rows


async def run(quick: bool) -> dict[str, Any]:
    limits = Limits.quick() if quick else Limits.full()
    started = time.perf_counter()
    data: dict[str, Any] = {"quick": quick, "machine": machine()}
    data["hot_path"] = await hot_path_cpu(20_000 if quick else 100_000, 3 if quick else 7)
    print(f"  hot path: {data['hot_path']}", file=sys.stderr)
    data["relay"] = await relay_cost(limits, 1 if quick else 3)
    data["metrics"] = await metrics_latency(20 if quick else 100)
    data["depth"] = await depth_polling(5 if quick else 30)
    data["seconds"] = round(time.perf_counter() - started, 1)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.observe", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--handler-only", action="store_true", help="only the per-message handler cost"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/kept/observe.json"))
    args = parser.parse_args()
    sys.setswitchinterval(0.0005)
    if args.handler_only:
        data = {"machine": machine(), "handler": asyncio.run(handler_cost(50_000, 15))}
        args.out.write_text(json.dumps(data, indent=2) + "\n")
        print(json.dumps(data["handler"]))
        return
    data = asyncio.run(run(args.quick))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps({k: data[k] for k in ("hot_path", "relay", "metrics", "depth")}, indent=1))


if __name__ == "__main__":
    main()
