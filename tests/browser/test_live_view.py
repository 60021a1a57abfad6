"""The live view in Debian's Chromium: it follows a running network, flags stalls, shows an
edge's packets, sends packets, keeps data from a page without the secret, and stays fast at
200 nodes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, expect

from msgflo.graph import parse_fbp
from msgflo.runtime import Access, Level, live_url
from msgflo.wiring import Endpoint
from tests.browser.live_helpers import Synthetic, chromium, page_of, served
from tests.unit import test_runtime_support as support
from tests.unit.test_runtime_support import Rig

pytestmark = pytest.mark.browser
rig, rig_factory = support.rig, support.rig_factory

GRAPH = "a(core/Repeat) OUT -> IN b(core/Repeat) OUT -> IN c(core/Drop)"
AB = '[data-edge="a.out -> b.in"]'
TIMEOUT = 10_000


async def start_participants(rig: Rig) -> None:
    for role, component in (("a", "core/Repeat"), ("b", "core/Repeat"), ("c", "core/Drop")):
        await rig.participant(component, role)


async def test_counters_and_states_change_while_traffic_flows(rig_factory: Any) -> None:
    rig: Rig = await rig_factory(graph=parse_fbp(GRAPH))
    async with chromium() as browser, page_of(browser) as page, served(rig.runtime) as url:
        await page.goto(url)
        edge, node_a = page.locator(AB), page.locator('[data-node="a"]')
        await expect(edge).to_have_attribute("data-state", "pending", timeout=TIMEOUT)
        await expect(node_a).to_have_attribute("data-instances", "0")
        await expect(edge.locator(".edge-label")).to_have_text("pending")
        flowhub = live_url("https://app.flowhub.io", f"ws://{urlsplit(url).netloc}", "rt-test")
        await expect(page.locator("#flowhub_url")).to_have_attribute("href", flowhub)

        await start_participants(rig)
        await expect(edge).to_have_attribute("data-state", "wired", timeout=TIMEOUT)
        await expect(node_a).to_have_attribute("data-instances", "1", timeout=TIMEOUT)
        await expect(node_a.locator(".stats")).to_contain_text("\u00d71")

        await edge.click()
        await expect(page.locator("#edge-panel")).to_be_visible()
        await expect(page.locator("#edge-summary")).to_contain_text("newest packets")

        async def traffic() -> None:
            n = 0
            while True:
                await rig.coordinator.send(Endpoint("a", "in"), {"n": n})
                n += 1
                await asyncio.sleep(0.05)

        sender = asyncio.create_task(traffic())
        try:
            await expect(edge.locator(".edge-label")).to_contain_text("msg/s", timeout=TIMEOUT)
            # the rate follows the traffic (about 20 per second are sent) within a few updates
            deadline = time.monotonic() + TIMEOUT / 1000
            rate = 0.0
            while not 2 < rate < 40:
                assert time.monotonic() < deadline, f"rate {rate} after {TIMEOUT / 1000:g} s"
                await asyncio.sleep(0.2)
                rate = float(await edge.get_attribute("data-rate") or "0")
            await expect(page.locator("#packets li").first).to_contain_text('{"n":')
            seen = json.loads(await page.locator("#packets li code").first.inner_text())
            await expect(page.locator("#packets li code").first).not_to_have_text(
                json.dumps(seen, separators=(",", ":")), timeout=TIMEOUT
            )  # the newest packet moves on while traffic flows, without a reload
        finally:
            sender.cancel()


async def test_a_stalled_edge_and_an_abnormal_rate_are_flagged(rig: Rig) -> None:
    synthetic = Synthetic(30)
    async with (
        chromium() as browser,
        page_of(browser) as page,
        served(rig.runtime, synthetic) as url,
    ):
        await page.goto(url)
        stalled = page.locator('[data-edge="stage000.out -> stage010.in"]')
        await expect(stalled).to_have_attribute("data-stalled", "true", timeout=TIMEOUT)
        await expect(stalled).to_have_class("edge wired stalled")
        await expect(stalled.locator(".edge-label")).to_contain_text("STALLED")
        color = await stalled.locator(".edge-line").evaluate("e => getComputedStyle(e).stroke")
        assert color == "rgb(239, 108, 0)"  # the stalled orange, not the wired green
        abnormal = page.locator('[data-edge="stage000.out -> stage011.in"]')
        await expect(abnormal.locator(".edge-label")).to_contain_text("ABNORMAL")
        await expect(page.locator('[data-edge="stage003.out -> stage014.in"]')).to_have_attribute(
            "data-state", "pending"
        )
        await expect(page.locator('[data-edge="stage004.out -> stage014.in"]')).to_have_attribute(
            "data-state", "error"
        )
        await expect(page.locator('[data-node="stage012"]')).to_have_class("node stale")
        updates = await page.evaluate("msgfloLive.updates")
        await expect(stalled.locator(".edge-label")).not_to_have_text(
            await stalled.locator(".edge-label").text_content() or "", timeout=TIMEOUT
        )  # the depth of a stalled queue grows from one update to the next
        assert await page.evaluate("msgfloLive.updates") > updates


async def test_a_packet_sent_from_the_page_arrives(rig_factory: Any) -> None:
    rig: Rig = await rig_factory(graph=parse_fbp(GRAPH))
    await start_participants(rig)
    await rig.coordinator.settled(5)
    arrived: asyncio.Queue[Any] = asyncio.Queue()

    async def tap(_ref: Endpoint, data: Any) -> None:
        await arrived.put(data)

    await rig.coordinator.tap(Endpoint("b", "out"), tap)  # what b repeats, b has received
    async with chromium() as browser, page_of(browser) as page, served(rig.runtime) as url:
        await page.goto(url)
        await expect(page.locator("#send-panel")).to_be_visible(timeout=TIMEOUT)
        await page.locator('[data-port="b.in"]').click()  # picks the target
        await expect(page.locator("#send-target")).to_have_value("b.in")
        await page.locator("#send-data").fill('{"hello": "from the page"}')
        await page.locator("#send-button").click()
        await expect(page.locator("#send-result")).to_contain_text("sent to b.in")
        assert await asyncio.wait_for(arrived.get(), 5) == {"hello": "from the page"}

        await page.locator("#send-target").select_option("a.in")
        await page.locator("#send-data").fill("plain words")
        await page.locator("#send-button").click()
        assert await asyncio.wait_for(arrived.get(), 5) == "plain words"  # via a, then b


async def see_secret_prompt(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("#secret-dialog")).to_be_visible(timeout=TIMEOUT)
    await expect(page.locator("#status")).to_have_text("waiting for the secret")
    assert await page.locator("[data-node]").count() == 0
    assert "core/Repeat" not in await page.content()


async def test_the_page_asks_for_the_secret_and_shows_nothing_without_it(
    rig_factory: Any,
) -> None:
    access = Access({"full-one": Level.FULL, "read-one": Level.READ}, Level.NONE)
    rig: Rig = await rig_factory(graph=parse_fbp(GRAPH), access=access)
    async with chromium() as browser, page_of(browser) as page, served(rig.runtime) as url:
        await see_secret_prompt(page, url)
        await page.locator("#secret-input").fill("wrong")
        await page.locator("#secret-form button").click()
        await expect(page.locator("#secret-error")).to_have_text("That secret is not valid here.")
        assert await page.locator("[data-node]").count() == 0

        await page.locator("#secret-input").fill("read-one")
        await page.locator("#secret-form button").click()
        await expect(page.locator('[data-node="a"]')).to_be_visible(timeout=TIMEOUT)
        await expect(page.locator("#secret-dialog")).to_be_hidden()
        await expect(page.locator("#send-panel")).to_be_hidden()  # read access cannot send

    async with chromium() as browser, page_of(browser) as page, served(rig.runtime) as url:
        await see_secret_prompt(page, url)  # a new browser remembers no secret
        await page.locator("#secret-input").fill("full-one")
        await page.locator("#secret-form button").click()
        await expect(page.locator("#send-panel")).to_be_visible(timeout=TIMEOUT)


async def test_200_nodes_render_and_update_without_freezing(rig: Rig) -> None:
    synthetic = Synthetic(200)
    async with (
        chromium() as browser,
        page_of(browser) as page,
        served(rig.runtime, synthetic) as url,
    ):
        await page.goto(url)
        await expect(page.locator("[data-node]")).to_have_count(200, timeout=TIMEOUT)
        edges = page.locator("[data-edge]")
        assert await edges.count() == len(synthetic(rig.runtime)["edges"])
        await page.wait_for_function("msgfloLive.renderMs.length >= 6", timeout=TIMEOUT)
        times: list[float] = await page.evaluate("msgfloLive.renderMs")
        first, updates = times[0], times[1:]
        print(f"\n200 nodes: first render {first:.0f} ms, updates {max(updates):.0f} ms at most")
        assert first < 2000, times  # layout and every element, painted
        assert max(updates) < 1000, times  # well inside the one-second polling period
        label = page.locator('[data-edge="stage050.out -> stage060.in"] .edge-label')
        before = await label.text_content() or ""
        await expect(label).not_to_have_text(before, timeout=TIMEOUT)
        await page.locator('[data-edge="stage050.out -> stage060.in"]').click()
        await expect(page.locator("#edge-id")).to_have_text("stage050.out -> stage060.in")
