"""Relay throughput and latency of the AMQP transport at at-least-once (manual acks, confirms).

The relay is ``msgflo.transport.amqp.AmqpClient`` + a modern async ``msgflo.Participant`` that
sends every input on to its outport, in a process of its own.  The load generator and the sink
are plain aiormq on their own connection, so they measure the relay, not themselves:

- throughput: the inport queue is filled with ``--messages`` 100-byte JSON messages before the
  relay starts; the rate is how fast the relay moves them to a queue bound to its outport
  exchange (sampled by passive declares, so no consumer competes for the CPU).  The relay's own
  CPU time per message is read from /proc where there is one.
- latency: for each of ``--rates`` the generator publishes at that pace with the send time in
  the body, and the sink consumes the output and records the time since sending (p50, p99).

Run: .venv/bin/python -m bench.amqp_probe [--url amqp://guest:guest@127.0.0.1:5672/]
Everything it declares carries a fresh ``msgflo-probe-<hex>`` prefix and is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

import aiormq
import orjson
from aiormq.abc import DeliveredMessage

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
BODY_SIZE = 100
SAMPLE_PERIOD = 0.02
READY = "relay ready"


@dataclass
class Result:
    messages: int
    throughput: float
    """Messages per second through the relay, inport queue to output queue (median of runs)."""
    relay_cpu_us: float | None
    """Relay CPU time (user + system) per message, in microseconds (median of runs)."""
    runs: list[float] = field(default_factory=list)
    """Throughput of each repetition: on a shared machine the spread says how far to trust it."""
    latency: dict[int, dict[str, float]] = field(default_factory=dict)
    """Per offered rate: p50 and p99 end-to-end latency in milliseconds, and messages lost."""


def body(seq: int) -> bytes:
    """A JSON object of exactly BODY_SIZE bytes carrying its send time."""
    head = orjson.dumps({"seq": seq, "t": time.time(), "pad": ""})
    return head[:-2] + b"x" * (BODY_SIZE - len(head)) + b'"}'


# -- the relay (child process) ---------------------------------------------------------------


async def run_relay(url: str, role: str) -> None:
    from msgflo.participant import Participant
    from msgflo.transport import Message, get_client

    class Relay(Participant):
        component = "bench/Relay"
        inports = {"in": "object"}
        outports = {"out": "object"}

        async def process(self, port: str, msg: Message) -> None:
            await self.send("out", msg.data)

    client = get_client(url)
    await client.connect()
    relay = Relay(role)
    await relay.start(client)
    print(READY, flush=True)
    await asyncio.to_thread(sys.stdin.read)  # the probe closes our stdin to stop us
    await relay.stop()
    await client.disconnect()


# -- the probe --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Probe:
    def __init__(self, url: str, prefetch: int | None, loop: str = "asyncio") -> None:
        self.url = url
        self.loop = loop
        self.role = f"msgflo-probe-{uuid.uuid4().hex[:8]}"
        self.inqueue = f"{self.role}.IN"
        self.outexchange = f"{self.role}.OUT"
        self.sink = f"{self.role}.sink"
        sep = "&" if "?" in url else "?"
        self.relay_url = f"{url}{sep}prefetch={prefetch}" if prefetch else url
        self.connection: aiormq.abc.AbstractConnection | None = None
        self.relay: asyncio.subprocess.Process | None = None

    async def channel(self) -> aiormq.abc.AbstractChannel:
        if self.connection is None:
            self.connection = await aiormq.connect(self.url)
        return await self.connection.channel(publisher_confirms=False)

    async def declare(self) -> None:
        """The relay's own topology, exactly as msgflo declares it, plus the sink queue."""
        ch = await self.channel()
        await ch.queue_declare(
            self.inqueue, durable=True, arguments={"x-dead-letter-exchange": f"dead-{self.inqueue}"}
        )
        await ch.exchange_declare(self.inqueue, exchange_type="fanout", durable=True)
        await ch.queue_bind(self.inqueue, self.inqueue, routing_key="")
        await ch.exchange_declare(self.outexchange, exchange_type="fanout", durable=True)
        await ch.queue_declare(self.sink, durable=False, auto_delete=False)
        await ch.queue_bind(self.sink, self.outexchange, routing_key="")
        await ch.close()

    async def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            ch = await self.channel()
            await ch.queue_delete(self.inqueue)
            await ch.queue_delete(self.sink)
            await ch.exchange_delete(self.inqueue)
            await ch.exchange_delete(self.outexchange)
        if self.connection is not None:
            await self.connection.close()

    async def count(self, ch: aiormq.abc.AbstractChannel, queue: str) -> int:
        ok = await ch.queue_declare(queue, passive=True)
        return ok.message_count or 0

    async def start_relay(self) -> None:
        self.relay = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.amqp_probe",
            "--relay",
            self.role,
            "--url",
            self.relay_url,
            "--loop",
            self.loop,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "MSGFLO_DISCOVERY_PERIOD": "3600"},
        )
        assert self.relay.stdout is not None
        line = (await self.relay.stdout.readline()).decode().strip()
        if line != READY:
            raise SystemExit(f"amqp_probe: the relay did not start (said {line!r})")

    async def stop_relay(self) -> None:
        relay, self.relay = self.relay, None
        if relay is None:
            return
        assert relay.stdin is not None
        relay.stdin.close()
        async with asyncio.timeout(30):
            await relay.wait()

    async def wait_count(self, ch: aiormq.abc.AbstractChannel, queue: str, count: int) -> None:
        while True:
            if await self.count(ch, queue) >= count:
                return
            await asyncio.sleep(SAMPLE_PERIOD)

    async def fill(self, count: int) -> None:
        ch = await self.channel()
        for seq in range(count):
            await ch.basic_publish(body(seq), routing_key=self.inqueue)
        await self.wait_count(ch, self.inqueue, count)
        await ch.close()

    async def throughput(self, count: int) -> tuple[float, float | None]:
        """Fill first, then start a relay and sample the sink queue until it holds them all."""
        await self.stop_relay()
        await self.fill(count)
        await self.start_relay()
        assert self.relay is not None
        ch = await self.channel()
        cpu_start = cpu_seconds(self.relay.pid)
        first: tuple[float, int] | None = None
        while True:
            seen = await self.count(ch, self.sink)
            now = time.perf_counter()
            if first is None and seen > 0:
                first = (now, seen)
            if seen >= count:
                break
            await asyncio.sleep(SAMPLE_PERIOD)
        cpu_end = cpu_seconds(self.relay.pid)
        await ch.queue_purge(self.sink)
        await ch.close()
        assert first is not None
        rate = (count - first[1]) / max(now - first[0], 1e-9)
        cpu = None if cpu_start is None or cpu_end is None else (cpu_end - cpu_start) / count
        return rate, None if cpu is None else cpu * 1e6

    async def latency(self, rate: int, duration: float) -> dict[str, float]:
        """Publish at ``rate`` for ``duration`` s; latencies of what the sink receives."""
        total = int(rate * duration)
        latencies: list[float] = []
        done = asyncio.Event()

        async def on_message(message: DeliveredMessage) -> None:
            latencies.append(time.time() - orjson.loads(message.body)["t"])
            if len(latencies) >= total:
                done.set()

        sink = await self.channel()
        await sink.basic_consume(self.sink, on_message, no_ack=True)
        source = await self.channel()
        tick = 0.005
        start = time.perf_counter()
        for seq in range(total):
            due = start + seq / rate
            if due - time.perf_counter() > tick:
                await asyncio.sleep(due - time.perf_counter())
            await source.basic_publish(body(seq), routing_key=self.inqueue)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await done.wait()
        await source.close()
        await sink.close()
        latencies.sort()
        if not latencies:
            return {"p50_ms": float("nan"), "p99_ms": float("nan"), "lost": total}
        return {
            "p50_ms": statistics.median(latencies) * 1e3,
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
            "lost": total - len(latencies),
        }

    async def run(self, messages: int, rates: list[int], duration: float, repeat: int) -> Result:
        try:
            await self.declare()
            runs = [await self.throughput(messages) for _ in range(repeat)]
            cpus = [cpu for _, cpu in runs if cpu is not None]
            result = Result(
                messages,
                statistics.median(rate for rate, _ in runs),
                statistics.median(cpus) if cpus else None,
                [rate for rate, _ in runs],
            )
            for offered in rates:
                result.latency[offered] = await self.latency(offered, duration)
            return result
        finally:
            await self.stop_relay()
            await self.cleanup()


def report(result: Result) -> str:
    cpu = f", relay CPU {result.relay_cpu_us:.0f} us/msg" if result.relay_cpu_us else ""
    spread = ""
    if len(result.runs) > 1:
        spread = f", median of {len(result.runs)}: {min(result.runs):,.0f}-{max(result.runs):,.0f}"
    lines = [
        f"throughput: {result.throughput:,.0f} msg/s ({result.messages:,} messages{cpu}{spread})"
    ]
    for rate, stats in result.latency.items():
        lines.append(
            f"latency at {rate:,} msg/s: p50 {stats['p50_ms']:.2f} ms, "
            f"p99 {stats['p99_ms']:.2f} ms, lost {stats['lost']:.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("MSGFLO_BROKER", DEFAULT_URL))
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument(
        "--rates", default="1000,2000,5000", help="comma-separated offered rates for latency"
    )
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per latency rate")
    parser.add_argument("--repeat", type=int, default=3, help="throughput repetitions (median)")
    parser.add_argument("--prefetch", type=int, help="the relay's ?prefetch= (default: ours)")
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="the relay's event loop (auto: uvloop where installed, as msgflo.run does)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--relay", metavar="ROLE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.relay:
        run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
        if args.loop != "asyncio":
            try:
                import uvloop
            except ImportError:
                if args.loop == "uvloop":
                    raise SystemExit("amqp_probe: uvloop is not installed") from None
            else:
                run = uvloop.run
        run(run_relay(args.url, args.relay))
        return
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    probe = Probe(args.url, args.prefetch, args.loop)
    result = asyncio.run(probe.run(args.messages, rates, args.duration, max(1, args.repeat)))
    text = orjson.dumps(asdict(result), option=orjson.OPT_NON_STR_KEYS).decode()
    print(text if args.json else report(result))


if __name__ == "__main__":
    main()
