"""The live view's endpoints on the memory transport: the network snapshot follows the
coordinator, an edge's packets are watched on demand, packets sent arrive, and every endpoint
keeps data from a client without the secret."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from msgflo.graph import parse_fbp
from msgflo.runtime import Access, Level
from tests.unit import test_runtime_support as support
from tests.unit.test_runtime_support import Rig

rig, rig_factory = support.rig, support.rig_factory

GRAPH = "a(core/Repeat) OUT -> IN b(core/Repeat) OUT -> IN c(core/Drop)"


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def get(rig: Rig, path: str, **headers: str) -> tuple[int, Any]:
    response = await rig.http.get(path, headers=headers)
    return response.status, await response.json()


async def test_snapshot_follows_discovery_and_wiring(rig_factory: Any) -> None:
    rig: Rig = await rig_factory(graph=parse_fbp(GRAPH))
    status, network = await get(rig, "/api/network")
    assert status == 200
    assert network["graph"] == "default/main"
    assert network["access"] == "full"
    by_name = {n["name"]: n for n in network["nodes"]}
    assert by_name["a"]["instances"] == 0 and by_name["a"]["last_seen"] is None
    assert [p["id"] for p in by_name["b"]["inports"]] == ["in"]  # named by the graph alone
    assert [(e["id"], e["state"]) for e in network["edges"]] == [
        ("a.out -> b.in", "pending"),
        ("b.out -> c.in", "pending"),
    ]
    for role, component in (("a", "core/Repeat"), ("b", "core/Repeat"), ("c", "core/Drop")):
        await rig.participant(component, role)
    await until(lambda: not rig.coordinator.pending_roles())
    await rig.coordinator.settled(5)
    deadline = time.monotonic() + 5  # the snapshot is renewed every second
    while True:
        _, network = await get(rig, "/api/network")
        if {e["state"] for e in network["edges"]} == {"wired"} or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    by_name = {n["name"]: n for n in network["nodes"]}
    assert by_name["a"]["instances"] == 1 and by_name["a"]["last_seen"] > 0
    assert by_name["a"]["stale"] is False
    assert by_name["b"]["inports"][0]["queue"] == "b.IN"
    assert {e["state"] for e in network["edges"]} == {"wired"}


async def test_edge_packets_and_rate_come_from_watching(rig_factory: Any) -> None:
    rig: Rig = await rig_factory(graph=parse_fbp(GRAPH))
    for role, component in (("a", "core/Repeat"), ("b", "core/Repeat"), ("c", "core/Drop")):
        await rig.participant(component, role)
    await rig.coordinator.settled(5)
    status, body = await get(rig, "/api/edge?id=a.out -> b.in")
    assert status == 200 and body["packets"] == []
    for n in range(25):
        sent = await rig.http.post("/api/send", json={"node": "a", "port": "in", "data": n})
        assert sent.status == 200 and (await sent.json()) == {"sent": "a.in"}
    deadline = time.monotonic() + 5
    while len(body["packets"]) < 20 or body["packets"][-1]["data"] != 24:
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)
        _, body = await get(rig, "/api/edge?id=a.out -> b.in")
    assert [p["data"] for p in body["packets"]] == list(range(5, 25))  # the newest 20
    deadline = time.monotonic() + 5  # figures arrive with the participants' next reports
    while True:
        _, network = await get(rig, "/api/network")
        rates = {e["id"]: e["rate"] for e in network["edges"]}
        if None not in rates.values() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    # both known: from the participants' reports, or for a watched edge from what the watch saw
    assert rates["a.out -> b.in"] is not None
    assert rates["b.out -> c.in"] is not None


async def test_bad_requests_get_a_clear_error(rig_factory: Any) -> None:
    rig: Rig = await rig_factory(graph=parse_fbp(GRAPH))
    assert (await get(rig, "/api/edge?id=x.out -> y.in"))[0] == 404
    status, body = await get(rig, "/api/edge?id=a.out -> b.in")
    assert status == 409 and "not wired yet" in body["error"]
    for payload, expected in (
        ({"node": "a", "port": "in"}, 400),
        ({"node": "zz", "port": "in", "data": 1}, 404),
        ({"node": "a", "port": "in", "data": 1}, 409),  # a has not announced itself
        ({"node": 3, "port": "in", "data": 1}, 400),
    ):
        response = await rig.http.post("/api/send", json=payload)
        assert response.status == expected, (payload, await response.text())
        assert (await response.json())["error"]
    response = await rig.http.post("/api/send", data=b"{not json")
    assert response.status == 400 and "not JSON" in (await response.json())["error"]


async def test_the_secret_guards_every_endpoint(rig_factory: Any) -> None:
    access = Access({"full-one": Level.FULL, "read-one": Level.READ}, Level.NONE)
    rig: Rig = await rig_factory(graph=parse_fbp(GRAPH), access=access)
    page = await rig.http.get("/")
    text = await page.text()
    assert page.status == 200 and 'id="flowhub_url"' in text and "rt-test" in text
    assert "a.out" not in text  # the page carries no data
    for path in ("/api/network", "/api/edge?id=a.out -> b.in"):
        assert (await get(rig, path))[0] == 401
        assert (await get(rig, path, **{"X-Msgflo-Secret": "wrong"}))[0] == 403
    status, network = await get(rig, "/api/network", **{"X-Msgflo-Secret": "read-one"})
    assert status == 200 and network["access"] == "read"
    send = {"node": "a", "port": "in", "data": 1}
    assert (await rig.http.post("/api/send", json=send)).status == 401
    refused = await rig.http.post("/api/send", json=send, headers={"X-Msgflo-Secret": "read-one"})
    assert refused.status == 403 and "full access" in (await refused.json())["error"]
    allowed = await rig.http.post("/api/send", json=send, headers={"X-Msgflo-Secret": "full-one"})
    assert allowed.status == 409  # past the access check: a has not announced itself


async def test_assets_ship_in_the_package(rig: Rig) -> None:
    for name, kind in (("live.js", "text/javascript"), ("live.css", "text/css")):
        response = await rig.http.get(f"/live/{name}")
        assert response.status == 200 and response.content_type == kind
        assert "http" not in (await response.text()).replace("http://www.w3.org", "")
    assert (await rig.http.get("/live/secrets.txt")).status == 404
