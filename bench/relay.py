"""Relay chains, fan-out and worker pools: saturation throughput and latency at half of it.

source → r1 → … → rN → sink, every relay a separate process (except on ``memory://``), wired by
coinciding queue names so that no coordinator forwards anything: what is measured is the
participant and the broker.  The same chain is run with every implementation in turn.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aio_pika

from bench.common import (
    BIN,
    NODE_MODULES,
    Limits,
    ProcessFailed,
    Result,
    ensure_node_peers,
    percentile,
    processes,
    rss_mb,
    summary,
    unique,
)
from bench.loadgen import AmqpLoad, Load, MqttLoad, NatsLoad, delete_amqp
from msgflo.participant import Participant
from msgflo.transport import Address, Client, Message, QueueKind, get_client

RELAYS = Path(__file__).resolve().parent / "relays"
NODE_REPEAT = Path(__file__).resolve().parent / "node" / "Repeat.js"

IMPLS = (
    "harness",
    "ours-async",
    "ours-legacy",
    "ours-async-asyncio",
    "node",
    "node-prefetch",
    "bare",
)
"""``harness`` is no relay at all (source straight to sink, N=0): the ceiling of the load
generator and broker.  ``ours-async-asyncio`` is the async relay with uvloop hidden; ``node-prefetch`` is the
original with prefetch 100 (AMQP only, where prefetch exists)."""

TUNED_NODE_PREFETCH = 100


@dataclass(frozen=True)
class Target:
    """Where the relays run: a transport name and the URL the relays connect to."""

    name: str
    url: str

    @property
    def amqp(self) -> bool:
        return self.url.startswith("amqp")

    @property
    def memory(self) -> bool:
        return self.url.startswith("memory")

    @property
    def nats(self) -> bool:
        return self.url.startswith("nats")


SCHEMA_IMPL = "ours-async-schema"
"""The async relay checking each input against a JSON Schema: the ``schema`` scenario's, not
a column of the relay chains (see ``bench.schema_cost``)."""


def relay_command(impl: str, target: Target, role: str, inq: str, outq: str) -> list[str]:
    if impl in ("ours-async", "ours-legacy", SCHEMA_IMPL):
        file = RELAYS / ("ours_legacy.py" if impl == "ours-legacy" else "ours_async.py")
        return [str(BIN / "msgflo-python"), str(file), role, "--broker", target.url]
    if impl == "ours-async-asyncio":
        launcher = RELAYS / "without_uvloop.py"
        return [sys.executable, str(launcher), str(RELAYS / "ours_async.py"), role]
    if impl.startswith("node"):
        launcher = NODE_MODULES / ".bin" / "msgflo-nodejs"
        return [str(launcher), "--name", role, "--broker", target.url, str(NODE_REPEAT)]
    if target.amqp:
        return [sys.executable, str(RELAYS / "bare_aiopika.py"), target.url, inq, outq]
    if target.nats:
        return [sys.executable, str(RELAYS / "bare_nats.py"), target.url, inq, outq]
    address = Address.parse(target.url)
    return [
        sys.executable,
        str(RELAYS / "bare_paho.py"),
        address.host,
        str(address.port or 1883),
        inq,
        outq,
    ]


def relay_env(impl: str, target: Target, inq: str, outq: str) -> dict[str, str]:
    env = {"BENCH_IN": inq, "BENCH_OUT": outq, "MSGFLO_BROKER": target.url}
    if impl.startswith("node"):
        env["NODE_PATH"] = str(NODE_MODULES)
    if impl == "node-prefetch":
        env["BENCH_PREFETCH"] = str(TUNED_NODE_PREFETCH)
    if impl == SCHEMA_IMPL:
        env["BENCH_SCHEMA"] = "1"
    return env


def supported(impl: str, target: Target) -> str | None:
    """Why ``impl`` has no row on ``target`` (``None`` when it has one)."""
    if target.memory and impl not in ("harness", "ours-async", "ours-legacy", SCHEMA_IMPL):
        return "memory:// exists only inside our process"
    if impl == "node-prefetch" and not target.amqp:
        return "prefetch exists only on AMQP"
    if target.nats and impl.startswith("node"):
        return "the original has no NATS transport"
    if target.nats and impl == "bare" and "jetstream" in target.url:
        return "the bare relay is core NATS only"
    return None


# -- in-process relays on memory:// ---------------------------------------------------------


class MemoryLoad(Load):
    """Source and sink on ``memory://`` (necessarily our client: the broker lives in-process)."""

    def __init__(self, url: str, source: str, sink: str) -> None:
        super().__init__()
        self.url, self.source, self.sink_queue = url, source, sink
        self.client: Client = get_client(url)

    async def open(self) -> None:
        import asyncio

        self.sink.room = asyncio.Event()
        await self.client.connect()
        await self.client.create_queue(QueueKind.OUT, self.source)
        await self.client.create_queue(QueueKind.IN, self.sink_queue)

        async def take(message: Message) -> None:
            self.sink.take(message.body)
            await self.client.ack_message(message)

        await self.client.subscribe_to_queue(self.sink_queue, take)

    async def close(self) -> None:
        await self.client.disconnect()

    async def publish(self, body: bytes) -> None:
        await self.client.send_raw(QueueKind.OUT, self.source, body)


def _memory_participant(impl: str, role: str, inq: str, outq: str) -> Participant:
    import importlib.util

    file = RELAYS / ("ours_legacy.py" if impl == "ours-legacy" else "ours_async.py")
    spec = importlib.util.spec_from_file_location(f"bench_relay_{impl.replace('-', '_')}", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    repeat: type[Participant] = module.Repeat
    if impl != "ours-legacy":
        inport: dict[str, Any] = {"queue": inq}
        if impl == SCHEMA_IMPL:
            inport["schema"] = module.LOAD_SCHEMA
        cls: type[Participant] = type(
            "Repeat",
            (repeat,),
            {"inports": {"in": inport}, "outports": {"out": {"queue": outq}}},
        )
        return cls(role)
    os.environ["BENCH_IN"], os.environ["BENCH_OUT"] = inq, outq
    participant: Participant = repeat(role)
    return participant


@contextlib.asynccontextmanager
async def memory_relays(impl: str, url: str, names: Sequence[str]) -> AsyncIterator[None]:
    started: list[tuple[Participant, Client]] = []
    try:
        for i in range(len(names) - 1):
            participant = _memory_participant(impl, f"r{i + 1}", names[i], names[i + 1])
            client = get_client(url)
            await client.connect()
            await participant.start(client)
            started.append((participant, client))
        yield
    finally:
        for participant, client in started:
            await participant.stop()
            await client.disconnect()


# -- measuring ------------------------------------------------------------------------------


async def measure(load: Load, limits: Limits) -> dict[str, Any]:
    """Warm up, then saturation ``repeats`` times, then latency at half the median rate."""
    warm = await load.saturate(limits.warmup, limits.seconds)
    # A slow relay (the original at prefetch 2 does tens of msg/s) must not be handed a window
    # it cannot drain before the run ends: keep about 50 ms of its rate in flight.
    load.window = max(4, min(load.window, int(warm.rate / load.sink.copies * 0.05)))
    runs = [await load.saturate(limits.messages, limits.seconds) for _ in range(limits.repeats)]
    rates = [r.rate for r in runs]
    rate = summary(rates)
    metrics: dict[str, Any] = {
        "throughput": rate,
        "lost": sum(r.lost for r in runs),
        "duplicates": sum(r.duplicates for r in runs),
        "sent": sum(r.sent for r in runs),
    }
    half = rate["median"] / 2 / load.sink.copies  # sent per second; each fans out to copies
    if half >= 1:
        messages = max(1, min(limits.latency_messages, int(half * limits.latency_seconds)))
        sent, latencies = await load.open_loop(half, messages, limits.latency_seconds)
        ordered = sorted(lat / 1e6 for lat in latencies)
        metrics["latency_ms"] = {
            "rate": half,
            "sent": sent,
            "received": len(ordered),
            "p50": percentile(ordered, 0.50),
            "p90": percentile(ordered, 0.90),
            "p99": percentile(ordered, 0.99),
        }
    return metrics


async def chain(
    target: Target, impl: str, relays: int, limits: Limits, *, source_url: str | None = None
) -> Result:
    """One chain of ``relays`` relays of one implementation on one transport."""
    variant = f"{target.name} N={relays}"
    why = supported(impl, target)
    if why is None and impl.startswith("node"):
        why = ensure_node_peers()
    if why is not None:
        return Result("relay", variant, impl, note=why)
    base = unique(f"chain{relays}")
    names = [f"{base}.e{i}" for i in range(relays + 1)]
    if target.memory:
        load: Load = MemoryLoad(target.url, names[0], names[-1])
        await load.open()
        try:
            async with memory_relays(impl, target.url, names):
                return Result("relay", variant, impl, await measure(load, limits))
        finally:
            await load.close()
    commands = [
        (
            relay_command(impl, target, f"{base}-r{i + 1}", names[i], names[i + 1]),
            relay_env(impl, target, names[i], names[i + 1]),
        )
        for i in range(relays)
    ]
    load = make_load(source_url or target.url, names[0], names[-1])
    try:
        await load.open()
        async with processes(commands) as procs:
            metrics = await measure(load, limits)
            if procs:
                metrics["relay_rss_mb"] = max(rss_mb(p.pid) for p in procs)
            return Result("relay", variant, impl, metrics)
    except ProcessFailed as exc:
        return Result("relay", variant, impl, note=str(exc))
    finally:
        await load.close()
        if target.amqp:
            await delete_amqp(target.url, names, names)
        if target.nats:
            await delete_streams(target.url, names)


async def delete_streams(url: str, names: Sequence[str]) -> None:
    """JetStream keeps streams after their clients leave; a chain's are removed after it."""
    client = get_client(url)
    async with client:
        for name in names:
            await client.remove_queue(QueueKind.IN, name)


def make_load(url: str, source: str, sink: str, copies: int = 1) -> Load:
    """The neutral source and sink; ``?fastpath=`` is for the relays only, ``?qos=`` for both."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "fastpath"]
    url = urlunsplit(parts._replace(query=urlencode(query)))
    if url.startswith("amqp"):
        return AmqpLoad(url, source, sink, copies)
    if url.startswith("nats"):
        return NatsLoad(url, source, sink, copies)
    address = Address.parse(url)
    qos = address.int_option("qos", 0)
    return MqttLoad(address.host, address.port or 1883, source, sink, copies, qos=qos)


async def fan(target: Target, impl: str, pattern: str, workers: int, limits: Limits) -> Result:
    """``fanout``: one exchange feeds ``workers`` queues (each message reaches every worker);
    ``pool``: ``workers`` consumers share one queue (each message reaches one)."""
    variant = f"{pattern} x{workers} {target.name}"
    why = supported(impl, target) or (ensure_node_peers() if impl.startswith("node") else None)
    if why is not None:
        return Result(pattern, variant, impl, note=why)
    base = unique(pattern)
    source, sink = f"{base}.in", f"{base}.out"
    if pattern == "fanout":
        inqueues = [f"{base}.w{i}" for i in range(workers)]
    else:
        inqueues = [source] * workers
    commands = [
        (
            relay_command(impl, target, f"{base}-w{i}", inq, sink),
            relay_env(impl, target, inq, sink),
        )
        for i, inq in enumerate(inqueues)
    ]
    copies = workers if pattern == "fanout" else 1
    load = AmqpLoad(target.url, source, sink, copies)
    try:
        await load.open()
        async with processes(commands):
            if pattern == "fanout":
                await bind_queues(target.url, source, inqueues)
            return Result(pattern, variant, impl, await measure(load, limits))
    except ProcessFailed as exc:
        return Result(pattern, variant, impl, note=str(exc))
    finally:
        await load.close()
        names = sorted({source, sink, *inqueues})
        await delete_amqp(target.url, names, names)


async def bind_queues(url: str, exchange: str, queues: Sequence[str]) -> None:
    """The fan-out edges: what a coordinator's pubsub bindings would declare."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in queues:
            queue = await channel.get_queue(name, ensure=True)
            await queue.bind(exchange)
    finally:
        await connection.close()
