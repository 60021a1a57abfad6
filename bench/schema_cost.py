"""What checking every input against a JSON Schema costs a relay (target: at most 15 % of its
throughput at ~100-byte messages).

The relay is ``ours-async`` on ``memory://``, with and without a schema on its inport
(``bench/relays/ours_async.py``, ``BENCH_SCHEMA=1``): source, relay and sink in this process, so
no broker time dilutes the check's share (a relay over RabbitMQ or Mosquitto spends more per
message and the check the same, so its share there is smaller).  Throughput is counted per
second of this process's CPU time, not of wall-clock time: on a machine shared with other work
the wall-clock rate of the same relay moved by a factor of three between runs, while CPU time
is charged only for our own work.  Plain and checked alternate, ``rounds`` times each, so a
drift during the run falls on both alike.  The cost is ``1 - median(checked) / median(plain)``.
"""

from __future__ import annotations

import time
import uuid

from bench import relay
from bench.common import Limits, Result, summary, unique

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


async def schema_cost(limits: Limits, rounds: int) -> list[Result]:
    rates: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    for _ in range(rounds):
        for impl in IMPLS:
            rates[impl].append(await _cpu_rate(impl, limits.messages, limits.seconds))
    plain, checked = (summary(rates[impl]) for impl in IMPLS)
    cost = 1 - checked["median"] / plain["median"] if plain["median"] else 1.0
    metrics = {"throughput": checked, "plain": plain, "cost": cost, "rounds": rounds}
    return [Result("schema", "memory N=1, msg per CPU-second", relay.SCHEMA_IMPL, metrics)]
