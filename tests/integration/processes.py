"""Participant processes for tests: start one, wait for its ready line, always stop it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
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


class Output:
    """Every line a running process prints (stdout and stderr), kept and awaitable."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        assert process.stdout is not None and process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(process.stdout)),
            asyncio.create_task(self._read(process.stderr)),
        ]

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            async with self._changed:
                self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()

    async def wait_line(self, pattern: str, timeout: float = 30.0, start: int = 0) -> re.Match[str]:
        """The first line (from index ``start``) that matches ``pattern``."""
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            return next((m for line in self.lines[start:] if (m := regex.search(line))), None)

        async def until() -> re.Match[str]:
            async with self._changed:
                await self._changed.wait_for(lambda: found() is not None)
            match = found()
            assert match is not None
            return match

        try:
            return await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            output = "\n".join(self.lines)
            raise AssertionError(f"no line like {pattern!r} in:\n{output}") from None
