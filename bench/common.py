"""What every scenario shares: limits, statistics, processes, the machine description."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NODE_PEERS = ROOT / "tests" / "external" / "node"
NODE_MODULES = NODE_PEERS / "node_modules"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"
MOSQUITTO = "mqtt://127.0.0.1:1883"
NATS = "nats://127.0.0.1:4222"
NATS_JETSTREAM = "nats://127.0.0.1:4222?jetstream=1"


@dataclass(frozen=True)
class Limits:
    """How long one measurement may run: whichever bound is hit first ends it."""

    messages: int
    seconds: float
    warmup: int
    repeats: int
    latency_messages: int
    latency_seconds: float

    @classmethod
    def full(cls) -> Limits:
        return cls(
            messages=30_000,
            seconds=2.5,
            warmup=2_000,
            repeats=3,
            latency_messages=6_000,
            latency_seconds=1.5,
        )

    @classmethod
    def quick(cls) -> Limits:
        return cls(
            messages=2_000,
            seconds=1.0,
            warmup=200,
            repeats=1,
            latency_messages=500,
            latency_seconds=0.5,
        )


@dataclass
class Result:
    """One row of the report: a scenario, an implementation, its numbers and notes."""

    scenario: str
    variant: str
    impl: str
    metrics: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "variant": self.variant,
            "impl": self.impl,
            "metrics": self.metrics,
            "note": self.note,
        }


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median and spread (min..max) of repetitions: few runs, so no standard deviation."""
    if not values:
        return {"median": 0.0, "min": 0.0, "max": 0.0, "n": 0}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def unique(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"


def rss_mb(pid: int) -> float:
    """Resident set size of one process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def ensure_node_peers() -> str | None:
    """Install the pinned Node peers when they are missing; ``None`` when ready, else why not."""
    if (NODE_MODULES / "msgflo-nodejs").is_dir():
        return None
    try:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_PEERS,
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"npm ci in {NODE_PEERS} failed: {exc}"
    return None


class ProcessFailed(Exception):
    """A process under test did not come up; the message carries its stderr."""


@dataclass
class Proc:
    argv: list[str]
    process: asyncio.subprocess.Process
    ready: str

    @property
    def pid(self) -> int:
        return self.process.pid


async def start_process(
    argv: Sequence[str], env: dict[str, str] | None = None, ready_timeout: float = 30.0
) -> Proc:
    """Start ``argv`` and wait for its first stdout line (every relay prints one when ready)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), ready_timeout)
    except TimeoutError:
        line = b""
    if not line:
        await stop_process(process)
        err = (await process.stderr.read()).decode(errors="replace").strip()
        raise ProcessFailed(f"{' '.join(argv)}: not ready: {err[-400:]}")
    return Proc(list(argv), process, line.decode().strip())


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def processes(
    commands: Sequence[tuple[Sequence[str], dict[str, str]]],
) -> AsyncIterator[list[Proc]]:
    """Start every command (in order, each ready before the next) and stop them all after."""
    started: list[Proc] = []
    try:
        for argv, env in commands:
            started.append(await start_process(argv, env))
        yield started
    finally:
        await asyncio.gather(*(stop_process(p.process) for p in started))


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _command_output(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else ""
    )


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gb() -> float:
    with contextlib.suppress(OSError), open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gb": memory_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "node": _command_output(["node", "--version"]),
        "packages": {
            name: _version(name)
            for name in ("msgflo", "aio-pika", "aiormq", "aiomqtt", "paho-mqtt", "amqtt", "orjson")
        },
        "uvloop": _version("uvloop"),
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
