"""CPU time per message of one MQTT relay process: ``MqttClient`` subscribed to topic A, sending
every body on to topic B (QoS 0), run in a process of its own so that /proc gives its CPU time
alone.  The source and the sink are our own ``MqttClient`` in this process.

Run: .venv/bin/python -m bench.mqtt_probe [--url mqtt://127.0.0.1:1883[?version=5]] [--messages N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import uuid

import orjson

from msgflo.transport import Message, QueueKind, get_client

READY = "relay ready"
PACE_EVERY = 200
PACE_SLEEP = 0.004
"""The source sleeps this long every PACE_EVERY messages, so that Mosquitto drops nothing."""


def unshared(url: str) -> str:
    """``url`` (which may carry options, e.g. ``?version=5``) with plain subscriptions."""
    return f"{url}{'&' if '?' in url else '?'}shared=0"


async def relay(url: str, source: str, sink: str) -> None:
    client = get_client(unshared(url))
    await client.connect()

    async def forward(message: Message) -> None:
        await client.send_raw(QueueKind.OUT, sink, message.body)

    await client.subscribe_to_queue(source, forward)
    print(READY, flush=True)
    await asyncio.Event().wait()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def probe(url: str, messages: int) -> dict[str, float]:
    base = f"msgflo-probe-{uuid.uuid4().hex}"
    source, sink = f"{base}/a", f"{base}/b"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.mqtt_probe",
        "--relay",
        url,
        source,
        sink,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    await process.stdout.readline()
    received = 0
    done = asyncio.Event()

    async def count(_message: Message) -> None:
        nonlocal received
        received += 1
        if received >= messages:
            done.set()

    async with get_client(unshared(url)) as out, get_client(url) as into:
        await out.subscribe_to_queue(sink, count)
        body = orjson.dumps({"pad": "x" * 80})
        before, started = cpu_seconds(process.pid), time.perf_counter()
        for i in range(messages):
            await into.send_raw(QueueKind.OUT, source, body)
            if i % PACE_EVERY == 0:
                await asyncio.sleep(PACE_SLEEP)
        with contextlib.suppress(TimeoutError):  # what did not arrive shows in "relayed"
            await asyncio.wait_for(done.wait(), 30)
        elapsed, used = time.perf_counter() - started, cpu_seconds(process.pid) - before
    process.kill()
    await process.wait()
    return {
        "messages": messages,
        "relayed": received,
        "seconds": round(elapsed, 2),
        "relay_cpu_us": round(used / max(received, 1) * 1e6, 2),
    }


def main() -> None:
    if sys.argv[1:2] == ["--relay"]:
        asyncio.run(relay(*sys.argv[2:5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--messages", type=int, default=150_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(probe(args.url, args.messages))
    print(orjson.dumps(result).decode() if args.json else result)


if __name__ == "__main__":
    main()
