"""What checking every input against a JSON Schema costs a relay (target: at most 15 % of its
throughput at ~100-byte messages).

The relay is ``ours-async`` on ``memory://``, with and without a schema on its inport
(``bench/relays/ours_async.py``, ``BENCH_SCHEMA=1``): source, relay and sink in this process, so
no broker time dilutes the check's share (a relay over RabbitMQ or Mosquitto spends more per
message and the check the same, so its share there is smaller).  Throughput is counted per
second of this process's CPU time, not of wall-clock time: on a machine shared with other work
the wall-clock rate of the same relay moved by a factor of three between runs, while CPU time
is charged only for our own work.  Plain and checked alternate, ``rounds`` times each, so a
drift during the run falls on both alike.  The cost is ``1 - median(checked) / median(plain)``;
``check_share`` is the same estimated from below: one check timed alone, times the plain rate.
"""

from __future__ import annotations

import time
import timeit
import uuid

import orjson

from bench import relay
from bench.common import Limits, Result, summary, unique
from bench.loadgen import payload
from bench.relays.ours_async import LOAD_SCHEMA
from msgflo.schemas import load_port_schema

IMPLS = ("ours-async", relay.SCHEMA_IMPL)


async def _cpu_rate(impl: str, messages: int, seconds: float) -> float:
    """Messages through one relay per CPU-second of this process, after a warm-up."""
    url = f"memory://schema-{uuid.uuid4().hex}"
    base = unique("schema")
    names = [f"{base}.e0", f"{base}.e1"]
    load = relay.MemoryLoad(url, names[0], names[-1])
    await load.open()
    try:
        async with relay.memory_relays(impl, url, names):
            await load.saturate(min(messages, 2_000), seconds)
            start = time.process_time()
            done = await load.saturate(messages, seconds)
            used = time.process_time() - start
            return done.received / used if used > 0 else 0.0
    finally:
        await load.close()


async def _check_us() -> float:
    """CPU microseconds of one check of a load message, alone (best of five timings)."""
    loaded = await load_port_schema("bench", "inport", "in", LOAD_SCHEMA)
    data = orjson.loads(payload(1, 1))
    timings = timeit.repeat(lambda: loaded.check(data), number=100_000, repeat=5)
    return min(timings) / 100_000 * 1e6


async def schema_cost(limits: Limits, rounds: int) -> list[Result]:
    rates: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    for _ in range(rounds):
        for impl in IMPLS:
            rates[impl].append(await _cpu_rate(impl, limits.messages, limits.seconds))
    plain, checked = (summary(rates[impl]) for impl in IMPLS)
    cost = 1 - checked["median"] / plain["median"] if plain["median"] else 1.0
    check_us = await _check_us()
    metrics = {
        "throughput": checked,
        "plain": plain,
        "cost": cost,
        "rounds": rounds,
        "check_us": check_us,
        "check_share": check_us * plain["median"] / 1e6,
    }
    return [Result("schema", "memory N=1, msg per CPU-second", relay.SCHEMA_IMPL, metrics)]
