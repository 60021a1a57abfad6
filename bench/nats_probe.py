"""CPU time a NATS relay process spends per message (``python -m bench.nats_probe``).

The closed-loop chain's throughput moves by a third between runs on a shared 2-core host; the
relay's own CPU time per message (from ``/proc``) is steadier and isolates the relay from the
load generator.  The source and sink are plain nats-py (``bench.loadgen.NatsLoad``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path

from bench.common import NATS, NATS_JETSTREAM, processes, unique
from bench.loadgen import NatsLoad
from bench.relay import Target, delete_streams, relay_command, relay_env

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def probe(impl: str, url: str, messages: int, repeats: int) -> dict[str, object]:
    target = Target("nats", url)
    base = unique("probe")
    inq, outq = f"{base}.in", f"{base}.out"
    if "jetstream" in url:
        from msgflo.transport import QueueKind, get_client

        async with get_client(url) as client:
            await client.create_queue(QueueKind.IN, inq)
            await client.create_queue(QueueKind.OUT, outq)
    load = NatsLoad(url, inq, outq)
    argv = relay_command(impl, target, f"{base}-r", inq, outq)
    per_msg, rates = [], []
    try:
        await load.open()
        async with processes([(argv, relay_env(impl, target, inq, outq))]) as procs:
            pid = procs[0].pid
            await load.saturate(2_000, 5.0)
            for _ in range(repeats):
                before = cpu_seconds(pid)
                run = await load.saturate(messages, 10.0)
                used = cpu_seconds(pid) - before
                per_msg.append(used / max(run.received, 1) * 1e6)
                rates.append(run.rate)
    finally:
        await load.close()
        if "jetstream" in url:
            await delete_streams(url, [inq, outq])
    return {
        "impl": impl,
        "url": url,
        "cpu_us_per_msg": per_msg,
        "cpu_us_median": statistics.median(per_msg),
        "rates": rates,
        "rate_median": statistics.median(rates),
    }


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.nats_probe", description=__doc__)
    parser.add_argument("--impl", default="bare,ours-async")
    parser.add_argument("--jetstream", action="store_true", help="our relay on JetStream")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    found = []
    for impl in args.impl.split(","):
        url = NATS_JETSTREAM if args.jetstream and impl != "bare" else NATS
        result = await probe(impl, url, args.messages, args.repeats)
        print(json.dumps(result), file=sys.stderr)
        found.append(result)
    if args.json:
        args.json.write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
