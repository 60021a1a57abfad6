"""``msgflo --ping-url/--ping-method/--ping-interval`` as a process, against a local registry."""

from __future__ import annotations

from pathlib import Path

from tests.http_registry import Registry, closed_port
from tests.integration.run_helpers import run_msgflo


async def test_msgflo_pings_the_registry_with_its_runtime_id(
    tmp_path: Path, registry: Registry
) -> None:
    async with run_msgflo(
        tmp_path,
        "--port",
        "0",
        "--runtime-id",
        "rt-42",
        "--ping-url",
        f"{registry.url}/runtimes/$RUNTIME_ID",
        "--ping-method",
        "GET",
        "--ping-interval",
        "0.1",
        broker=None,
    ) as running:
        await running.wait_line(r"^msgflo ready")
        await registry.wait_for(2)
        assert await running.stop() == 0
    assert registry.requests[:2] == [("GET", "/runtimes/rt-42")] * 2


async def test_msgflo_keeps_running_while_the_registry_is_away(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/runtimes/$RUNTIME_ID"
    async with run_msgflo(
        tmp_path, "--port", "0", "--ping-url", url, "--ping-interval", "0.1", broker=None
    ) as running:
        await running.wait_line(r"^msgflo ready")
        first = await running.wait_line(r"alive ping POST .* failed: ")
        await running.wait_line(
            r"alive ping POST .* failed: ", start=running.lines.index(first.string) + 1
        )
        assert running.process.returncode is None
        assert await running.stop() == 0
