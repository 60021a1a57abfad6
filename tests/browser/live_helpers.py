"""What the browser tests and the screenshot script share: Debian's Chromium driven by
Playwright (never a downloaded browser), a runtime's app served on a real port with an
optional network provider of the test's own, and a synthetic network of any size."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright

from msgflo.runtime import Runtime, make_app
from msgflo.runtime.live import NETWORK_KEY, Provider

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    return str(CHROMIUM)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def page_of(browser: Browser, width: int = 1400, height: int = 900) -> AsyncIterator[Page]:
    """A page that fails the test on any JavaScript error it raises."""
    page = await browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        await page.close()
    assert errors == [], errors


@contextlib.asynccontextmanager
async def served(rt: Runtime, provider: Provider | None = None) -> AsyncIterator[str]:
    """The runtime's app on 127.0.0.1 (any free port); yields its base URL."""
    app = make_app(rt)
    if provider is not None:
        app[NETWORK_KEY] = provider
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/"))
    finally:
        await server.close()


class Synthetic:
    """A layered network of ``size`` nodes whose figures move on every snapshot: edges
    ``i -> i+10`` and every third ``i -> i+11``; edge 0 is stalled, edge 1 has an abnormal
    rate, one edge is pending and one is in error."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.tick = 0

    def __call__(self, rt: Runtime) -> dict[str, Any]:
        self.tick += 1
        tick = self.tick
        nodes = [
            {
                "name": f"stage{i:03d}",
                "component": "demo/Stage" if i % 7 else "demo/Sink",
                "instances": 1 + i % 3,
                "restarts": 2 if i % 5 == 0 else 0,
                "last_seen": 1.7e9 + tick,
                "stale": i == 12,
                "processing_ms": {"p50": 1.0 + i % 4, "p95": 3.0 + i % 9, "p99": 9.0},
                "errors": (tick + i) % 4 if i % 17 == 0 else 0,
                "nacks": 0,
                "dead_letters": 1 if i % 23 == 0 else 0,
                "inports": [{"id": "in", "queue": f"stage{i:03d}.IN", "rate": 1.0, "depth": 0}],
                "outports": [{"id": "out", "queue": f"stage{i:03d}.OUT", "rate": 1.0}],
            }
            for i in range(self.size)
        ]
        edges = []
        for i in range(self.size):
            for step in (10, 11) if i % 3 == 0 else (10,):
                if i + step < self.size:
                    edges.append((i, i + step))
        return {
            "time": 1.7e9 + tick,
            "graph": f"synthetic-{self.size}",
            "broker": "amqp://guest:***@localhost:5672/",
            "nodes": nodes,
            "edges": [
                {
                    "id": f"stage{a:03d}.out -> stage{b:03d}.in",
                    "src": {"node": f"stage{a:03d}", "port": "out"},
                    "tgt": {"node": f"stage{b:03d}", "port": "in"},
                    "state": "pending" if n == 5 else "error" if n == 6 else "wired",
                    "rate": 0.0 if n == 0 else round(50 + 40 * math.sin(tick / 3 + n), 2),
                    "depth": 1500 + tick if n == 0 else (n * 7 + tick) % 30,
                    "stalled": n == 0,
                    "abnormal": n == 1,
                    "error": "stage001: no port 'in'" if n == 6 else None,
                }
                for n, (a, b) in enumerate(edges)
            ],
        }
