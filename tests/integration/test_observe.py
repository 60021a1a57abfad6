"""Figures of a running network on the real brokers: counters move with traffic, a queue whose
consumer stopped shows its depth and is flagged stalled, a participant that stops reporting
turns stale, the endpoints refuse clients without the secret, and a management API that is
absent or refuses never takes depth away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from msgflo.graph import parse_fbp
from msgflo.observe.depth import DepthSource
from msgflo.runtime import Access
from msgflo.transport import QueueKind, get_broker
from tests.brokers import MOSQUITTO, RABBITMQ, require_broker
from tests.unit.test_runtime_support import Rig, open_rig

WAIT = 20.0
BROKERS = {"memory": None, "rabbitmq": (5672, RABBITMQ), "mosquitto": (1883, MOSQUITTO)}


@pytest.fixture(autouse=True)
def fast_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGFLO_FIGURES", "0.2")


@pytest.fixture(params=list(BROKERS))
def broker_url(request: pytest.FixtureRequest, prefix: str) -> str:
    where = BROKERS[request.param]
    if where is None:
        return f"memory://{prefix}"
    require_broker(*where)
    return where[1]


@pytest.fixture
async def network(
    broker_url: str, prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[Rig, str, str]]:
    """``A(Repeat) -> B(Drop)`` with unique role names, both running in this process."""
    a, b = f"{prefix}a", f"{prefix}b"
    graph = parse_fbp(f"{a}(core/Repeat) OUT -> IN {b}(core/Drop)")
    async with open_rig(broker_url, tmp_path, graph=graph) as rig:
        await rig.participant("core/Repeat", a)
        await rig.participant("core/Drop", b)
        assert await rig.coordinator.settled(WAIT)
        yield rig, a, b


async def network_json(rig: Rig, **headers: str) -> tuple[int, Any]:
    response = await rig.http.get("/api/network", headers=headers)
    return response.status, await response.json()


async def until(rig: Rig, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first snapshot for which ``check`` holds (the observer ticks every second)."""
    deadline = time.monotonic() + WAIT
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = await network_json(rig)
        assert status == 200
        if check(body):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"never seen; last snapshot: {json.dumps(body)[:2000]}")


def node(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in body["nodes"] if n["name"] == name)


def edge(body: dict[str, Any]) -> dict[str, Any]:
    [only] = body["edges"]
    return dict(only)


async def pump(rig: Rig, queue: str, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        await rig.client.send_to(QueueKind.IN, queue, n)
        n += 1
        await asyncio.sleep(0.01)


@pytest.mark.broker
async def test_counters_rates_and_metrics_move_with_traffic(network: tuple[Rig, str, str]) -> None:
    rig, a, b = network
    queue = rig.participants[0].inport("in")["queue"]
    stop = asyncio.Event()
    pumping = asyncio.create_task(pump(rig, queue, stop))
    try:
        body = await until(
            rig,
            lambda s: (
                (edge(s)["rate"] or 0) > 0
                and (node(s, b)["inports"][0]["rate"] or 0) > 0
                and node(s, a)["processing_ms"] is not None
            ),
        )
    finally:
        stop.set()
        await pumping
    assert edge(body)["state"] == "wired" and edge(body)["id"] == f"{a}.out -> {b}.in"
    assert node(body, a)["instances"] == 1 and node(body, a)["stale"] is False
    assert node(body, a)["outports"][0]["rate"] > 0
    assert set(node(body, a)["processing_ms"]) == {"p50", "p95", "p99"}
    metrics = await (await rig.http.get("/metrics")).text()
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(f'msgflo_messages_in_total{{port="in",role="{b}"}}')
    ]
    assert counted and counted[0] > 0
    assert f'msgflo_instances{{role="{a}"}} 1.0' in metrics
    assert "msgflo_processing_seconds_bucket{" in metrics


@pytest.mark.broker
async def test_a_stopped_consumer_shows_depth_and_stalls(
    network: tuple[Rig, str, str], broker_url: str
) -> None:
    rig, _a, b = network
    await rig.participants[1].stop()
    queue = rig.participants[0].inport("in")["queue"]
    for n in range(5):
        await rig.client.send_to(QueueKind.IN, queue, n)
    if broker_url.startswith("mqtt"):
        # No broker-side queue and no participant holding a backlog: unknown, never a guess.
        body = await until(rig, lambda s: node(s, b)["stale"])
        assert edge(body)["depth"] is None
        return
    body = await until(rig, lambda s: edge(s)["depth"] == 5)
    assert node(body, b)["inports"][0]["depth"] == 5
    body = await until(rig, lambda s: edge(s)["stalled"])
    assert edge(body)["depth"] == 5


@pytest.mark.broker
async def test_a_participant_that_stops_reporting_is_stale(network: tuple[Rig, str, str]) -> None:
    rig, a, _b = network
    await until(rig, lambda s: node(s, a)["last_seen"] is not None and not node(s, a)["stale"])
    await rig.participants[0].stop()
    body = await until(rig, lambda s: node(s, a)["stale"])
    assert node(body, a)["instances"] == 1  # discovery has not given it up yet


async def test_figures_need_the_secret(prefix: str, tmp_path: Path) -> None:
    access = Access.configure("s3cret", None, None)
    async with open_rig(f"memory://{prefix}", tmp_path, access=access) as rig:
        for path in ("/metrics", "/api/network"):
            assert (await rig.http.get(path)).status == 401
            assert (await rig.http.get(path, params={"secret": "wrong"})).status == 403
            refused = await (await rig.http.get(path)).text()
            assert "msgflo_" not in refused and "nodes" not in refused
            ok = await rig.http.get(path, headers={"Authorization": "Bearer s3cret"})
            assert ok.status == 200
            ok = await rig.http.get(path, headers={"X-Msgflo-Secret": "s3cret"})
            assert ok.status == 200
        anonymous = await rig.connect()
        payload = {"graph": "default/main"}
        assert "not permitted" in await anonymous.error("msgflo", "observe", payload)


async def test_fbp_clients_that_ask_get_edge_figures_others_nothing(
    prefix: str, tmp_path: Path
) -> None:
    a, b = f"{prefix}a", f"{prefix}b"
    graph = parse_fbp(f"{a}(core/Repeat) OUT -> IN {b}(core/Drop)")
    async with open_rig(f"memory://{prefix}", tmp_path, graph=graph) as rig:
        await rig.participant("core/Repeat", a)
        await rig.participant("core/Drop", b)
        bystander = await rig.connect()
        asker = await rig.connect()
        await asker.send("msgflo", "observe", {"graph": "default/main"}, requestId="r1")
        first = await asyncio.wait_for(asker.ws.receive_json(), WAIT)
        assert (first["protocol"], first["command"], first["responseTo"]) == (
            "msgflo",
            "figures",
            "r1",
        )
        pushed = await asyncio.wait_for(asker.ws.receive_json(), WAIT)
        [figures] = pushed["payload"]["edges"]
        assert figures["src"] == {"node": a, "port": "out"}
        assert figures["state"] == "wired" and "depth" in figures and "rate" in figures
        reply = await bystander.request("runtime", "getruntime", reply="runtime")
        assert reply["protocol"] == "runtime"  # schema-checked; nothing of msgflo came first
        seen = len(bystander.seen)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.5):
                while True:
                    await bystander.receive()  # each one validated against fbp-protocol
        assert all(m["protocol"] != "msgflo" for m in bystander.seen[seen:])
        await asker.send("msgflo", "observe", {"graph": "default/main", "enable": False})


@pytest.mark.broker
async def test_management_api_absent_refusing_or_present(prefix: str) -> None:
    require_broker(5672, "RabbitMQ")
    broker = get_broker(RABBITMQ)
    await broker.connect()
    queue = f"{prefix}.IN"
    try:
        await broker.create_queue(QueueKind.IN, queue)
        for _ in range(3):
            await broker.send_to(QueueKind.IN, queue, "x")
        await broker.flush()
        for url in ("http://127.0.0.1:1", "http://nobody:wrong@127.0.0.1:15672"):
            source = DepthSource(broker, url)
            samples = await source.poll([queue, f"{prefix}.MISSING"])
            await source.close()
            depth = samples[queue].depth
            assert depth is not None and depth.messages == 3
            assert samples[f"{prefix}.MISSING"].depth is None
            assert source.management_error and "wrong" not in source.management_error
        # The broker of the test environment runs the management plugin: one request for all.
        source = DepthSource(broker, "http://127.0.0.1:15672")
        deadline = time.monotonic() + WAIT
        while True:
            samples = await source.poll([queue])
            depth = samples[queue].depth
            if (depth is not None and depth.messages == 3) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)  # the management API's figures lag a few seconds
        await source.close()
        assert source.management_error is None
        assert depth is not None and depth.messages == 3
    finally:
        await broker.remove_queue(QueueKind.IN, queue)
        await broker.disconnect()
