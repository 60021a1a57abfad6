"""Make the live view's screenshots in docs/images/: the demo graph run by the real
``msgflo`` command (embedded broker, its participants as processes), and a synthetic 200-node
network. Run from the repository root: ``.venv/bin/python -m tests.browser.screenshots``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from msgflo.coordinator import Coordinator
from msgflo.library import Library, LibraryConfig
from msgflo.runtime import Runtime, RuntimeOptions
from msgflo.transport import get_broker
from tests.browser.live_helpers import Synthetic, chromium, page_of, served

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
DEMO = ROOT / "examples" / "demo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def network(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/network", timeout=5) as response:
        body: dict[str, Any] = json.load(response)
        return body


def wait_wired(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if all(e["state"] == "wired" for e in network(port)["edges"]):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("screenshots: the demo network was not wired in time")
        time.sleep(0.5)


async def demo() -> None:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k not in ("MSGFLO_BROKER", "CLOUDAMQP_URL")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    command = [str(bin_dir / "msgflo"), "--graph", "demo.fbp", "--port", str(port)]
    msgflo = await asyncio.create_subprocess_exec(*command, cwd=DEMO, env=env)
    try:
        await asyncio.to_thread(wait_wired, port)
        async with chromium() as browser, page_of(browser, 1400, 720) as page:
            await page.goto(f"http://localhost:{port}/")
            await page.locator('[data-edge="ticker.out -> shout.in"]').click()
            await page.wait_for_function(
                "document.querySelectorAll('#packets li').length >= 4", timeout=30_000
            )
            await page.screenshot(path=IMAGES / "live-view-demo.png")
    finally:
        msgflo.send_signal(signal.SIGINT)
        await asyncio.wait_for(msgflo.wait(), 30)


async def synthetic() -> None:
    coordinator = Coordinator(get_broker("memory://screenshots"))
    rt = Runtime(coordinator, Library(LibraryConfig(), [], root=ROOT), RuntimeOptions(id="shots"))
    async with (
        served(rt, Synthetic(200)) as url,
        chromium() as browser,
        page_of(browser, 1600, 1000) as page,
    ):
        await page.goto(url)
        await page.wait_for_function("msgfloLive.updates >= 3")
        await page.locator("#zoom-out").click()
        await page.screenshot(path=IMAGES / "live-view-200.png")


async def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    if "--synthetic-only" not in sys.argv:
        await demo()
    await synthetic()


if __name__ == "__main__":
    asyncio.run(main())
