"""``python -m bench.autoscale``: queue-driven autoscaling against one worker, on RabbitMQ.

A participant that takes 50 ms per message (``asyncio.sleep``: I/O-bound, so twenty of them
fit on two cores) finds MESSAGES messages already queued.  ``msgflo`` runs it once with
``--autoscale`` (``deadline: 20``, ``max: 20``, ``min: 1``) and once as a single instance; the
clock starts when ``msgflo`` is launched and stops when the last output arrives.  With
``--autoscale`` the run goes on until the scaler is back at ``min``.

Examples::

    python -m bench.autoscale --mode both --out bench/kept/autoscale.json
    python -m bench.autoscale --mode single --messages 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BIN, RABBITMQ, machine
from msgflo.transport import Binding, Message, QueueKind, get_broker

PROCESSING = 0.05
SLOW = f"""
import asyncio

import msgflo


class Slow(msgflo.Participant):
    component = "Slow"
    inports = {{"in": "any"}}
    outports = {{"out": "any"}}

    async def process(self, port, msg):
        await asyncio.sleep({PROCESSING})
        await self.send("out", msg.data)
"""
SCALING = """\
"*":
  pollinterval: 1
  history: 20
{role}:
  min: 1
  max: 20
  deadline: 20
  processing: {processing}
"""
DECISION = re.compile(r"msgflo: (\S+): (keep|scale to (\d+)) \(queued (\d+), workers (\S+),")


def project(root: Path, role: str) -> Path:
    (root / "participants").mkdir()
    (root / "participants" / "Slow.py").write_text(SLOW)
    (root / "fbp-config.json").write_text("{}")
    (root / "graph.fbp").write_text(f"INPORT={role}.IN:IN\n{role}(Slow)\n")
    (root / "scale.guv.yaml").write_text(SCALING.format(role=role, processing=PROCESSING))
    return root


async def follow(
    stream: asyncio.StreamReader, start: float, lines: list[tuple[float, str]]
) -> None:
    while raw := await stream.readline():
        lines.append((time.monotonic() - start, raw.decode(errors="replace").rstrip()))


async def run(autoscale: bool, messages: int, timeout: float) -> dict[str, Any]:
    role = f"slow{secrets.token_hex(3)}"
    inqueue, outqueue, observer = f"{role}.IN", f"{role}.OUT", f"{role}.bench"
    broker = get_broker(RABBITMQ)
    await broker.connect()
    done = asyncio.Event()
    received = 0

    async def count(message: Message) -> None:
        nonlocal received
        received += 1
        await broker.ack_message(message)
        if received >= messages:
            done.set()

    await broker.create_queue(QueueKind.IN, inqueue)
    await broker.create_queue(QueueKind.OUT, outqueue)
    await broker.create_queue(QueueKind.IN, observer)
    await broker.add_binding(Binding(outqueue, observer))
    await broker.subscribe_to_queue(observer, count)
    for index in range(messages):
        await broker.send_to(QueueKind.IN, inqueue, index)
    await broker.flush()
    lines: list[tuple[float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp), role)
        argv = [str(BIN / "msgflo"), "--graph", "graph.fbp", "--port", "0"]
        argv += ["--broker", f"{RABBITMQ}?prefetch=1"]
        if autoscale:
            argv += ["--autoscale", "scale.guv.yaml"]
        start = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=root, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        assert process.stdout is not None
        reader = asyncio.create_task(follow(process.stdout, start, lines))
        finished: float | None = None
        back_to_min: float | None = None
        try:
            await asyncio.wait_for(done.wait(), timeout)
            finished = time.monotonic() - start
            while autoscale and time.monotonic() - start < timeout:
                scaled = [
                    (t, int(m[3])) for t, line in lines if (m := DECISION.search(line)) and m[3]
                ]
                if not scaled or scaled[-1][1] == 1:
                    back_to_min = scaled[-1][0] if scaled else finished
                    break
                await asyncio.sleep(0.5)
        except TimeoutError:
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 60)
            await reader
            await broker.unsubscribe_from_queue(observer)
            await broker.remove_queue(QueueKind.IN, inqueue)
            await broker.remove_queue(QueueKind.IN, observer)
            await broker.remove_queue(QueueKind.OUT, outqueue)
            await broker.disconnect()
    decisions = [(t, line) for t, line in lines if DECISION.search(line)]
    targets = [int(m[3]) for _, line in decisions if (m := DECISION.search(line)) and m[3]]
    return {
        "mode": "autoscale" if autoscale else "single",
        "messages": messages,
        "received": received,
        "processing_seconds": PROCESSING,
        "seconds_to_done": finished,
        "peak_instances": max(targets, default=1),
        "back_to_min_at": back_to_min,
        "processes_started": sum(1 for _, line in lines if ": started pid " in line),
        "decisions": [f"{t:7.2f} {line}" for t, line in decisions],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("autoscale", "single", "both"), default="both")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=400)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    modes = {"autoscale": [True], "single": [False], "both": [True, False]}[args.mode]
    runs = [asyncio.run(run(auto, args.messages, args.timeout)) for auto in modes]
    result = {"scenario": "autoscale", "machine": machine(), "runs": runs}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
