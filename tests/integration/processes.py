"""Participant processes for tests: start one, wait for its ready line, always stop it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

BIN = Path(sys.executable).parent


@contextlib.asynccontextmanager
async def running(
    argv: Sequence[str],
    broker: str,
    *,
    env: dict[str, str] | None = None,
    ready_timeout: float = 20,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Run ``argv`` with ``MSGFLO_BROKER=broker``; yield the process and its first stdout line."""
    full_env = {**os.environ, "MSGFLO_BROKER": broker, **(env or {})}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=full_env,
    )
    try:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), ready_timeout)
        except TimeoutError:
            raise AssertionError(f"{argv} printed no ready line in {ready_timeout} s") from None
        if not line:
            assert proc.stderr is not None
            err = (await proc.stderr.read()).decode(errors="replace")
            raise AssertionError(f"{argv} exited before it was ready: {err}")
        yield proc, line.decode().strip()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
