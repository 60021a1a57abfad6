"""What checking every input against a JSON Schema costs a relay (target: at most 15 % of its
throughput at ~100-byte messages).

The relay chain N=1 of ``ours-async`` with and without a schema on its inport
(``bench/relays/ours_async.py``, ``BENCH_SCHEMA=1``), measured in alternation, plain then
checked, ``rounds`` times, so that the load of a shared machine drifting during the run falls on
both alike; each measurement is one saturation repetition of the relay scenario.  The cost is
``1 - median(checked) / median(plain)``.
"""

from __future__ import annotations

import dataclasses

from bench import relay
from bench.common import Limits, Result, summary

IMPLS = ("ours-async", relay.SCHEMA_IMPL)


async def schema_cost(targets: list[relay.Target], limits: Limits, rounds: int) -> list[Result]:
    once = dataclasses.replace(limits, repeats=1)
    results = []
    for target in targets:
        rates: dict[str, list[float]] = {impl: [] for impl in IMPLS}
        for _ in range(rounds):
            for impl in IMPLS:
                row = await relay.chain(target, impl, 1, once)
                if row.note:
                    return [Result("schema", f"{target.name} N=1", impl, note=row.note)]
                rates[impl].append(row.metrics["throughput"]["median"])
        plain, checked = (summary(rates[impl]) for impl in IMPLS)
        cost = 1 - checked["median"] / plain["median"]
        results.append(
            Result(
                "schema",
                f"{target.name} N=1",
                relay.SCHEMA_IMPL,
                {"throughput": checked, "plain": plain, "cost": cost, "rounds": rounds},
            )
        )
    return results
