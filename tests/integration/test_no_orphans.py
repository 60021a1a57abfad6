"""No participant outlives its coordinator, even one killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from tests.brokers import MOSQUITTO, require_broker
from tests.integration.processes import BIN

pytestmark = [pytest.mark.broker, pytest.mark.slow]
LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_children_die_when_the_coordinator_is_killed(tmp_path: Path, prefix: str) -> None:
    require_broker(1883, "Mosquitto")
    components = tmp_path / "participants"
    components.mkdir()
    shutil.copy(LEGACY / "Repeat.py", components / "Repeat.py")
    (tmp_path / "g.fbp").write_text(f"{prefix}a(Repeat) OUT -> IN {prefix}b(Repeat)\n")
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo"),
        "--graph",
        "g.fbp",
        "--broker",
        MOSQUITTO,
        "--port",
        "0",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    pids: list[int] = []
    ready = 0
    try:
        async with asyncio.timeout(30):
            while len(pids) < 2 or ready < 2:  # running, not merely starting
                line = (await proc.stdout.readline()).decode()
                assert line, "msgflo ended before starting its participants"
                if found := re.search(r"started pid (\d+)", line):
                    pids.append(int(found.group(1)))
                ready += " ready on " in line
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    async with asyncio.timeout(10):
        while any(alive(pid) for pid in pids):  # noqa: ASYNC110 - no event tells of a pid's end
            await asyncio.sleep(0.1)
