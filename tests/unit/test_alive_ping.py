"""The alive ping against a local HTTP server standing in for the runtime registry."""

from __future__ import annotations

import asyncio
import logging

from msgflo.runtime.ping import AlivePing, alive_ping
from tests.http_registry import WAIT, Registry, closed_port

INTERVAL = 0.05


async def test_pings_at_once_and_then_every_interval(registry: Registry) -> None:
    ping = AlivePing(f"{registry.url}/runtimes/$RUNTIME_ID", "POST", INTERVAL)
    async with alive_ping(ping, "4c0ffee"):
        await registry.wait_for(3)
    assert registry.requests[:3] == [("POST", "/runtimes/4c0ffee")] * 3


async def test_method_get(registry: Registry) -> None:
    async with alive_ping(AlivePing(f"{registry.url}/r/$RUNTIME_ID", "GET", INTERVAL), "x"):
        await registry.wait_for(1)
    assert registry.requests[0] == ("GET", "/r/x")


async def test_no_ping_with_interval_zero(registry: Registry) -> None:
    async with alive_ping(AlivePing(f"{registry.url}/$RUNTIME_ID", "POST", 0), "x"):
        await asyncio.sleep(0.3)
    assert registry.requests == []


class Warnings(logging.Handler):
    """The ping's log lines, awaitable."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self.logger = logging.getLogger("msgflo.runtime.ping")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.changed.set()

    def __enter__(self) -> Warnings:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.lines) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_a_refused_ping_is_logged_and_the_next_one_still_goes_out(
    registry: Registry,
) -> None:
    registry.statuses = [500, 404]
    ping = AlivePing(f"{registry.url}/runtimes/$RUNTIME_ID", "POST", INTERVAL)
    with Warnings() as warnings:
        async with alive_ping(ping, "abc"):
            await registry.wait_for(3)
    assert warnings.lines[:2] == [
        f"alive ping POST {registry.url}/runtimes/abc failed: answered 500 Internal Server Error",
        f"alive ping POST {registry.url}/runtimes/abc failed: answered 404 Not Found",
    ]


async def test_an_unreachable_registry_is_logged_never_fatal() -> None:
    url = f"http://127.0.0.1:{closed_port()}/runtimes/$RUNTIME_ID"
    with Warnings() as warnings:
        async with alive_ping(AlivePing(url, "POST", INTERVAL), "abc"):
            await warnings.wait_for(2)
    assert all("failed: cannot connect to host" in line.lower() for line in warnings.lines)
