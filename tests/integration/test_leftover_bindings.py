"""A graph edited while its coordinator was down: on RabbitMQ the bindings of removed edges
outlive the coordinator, and the next one removes them (it recorded what it bound)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from msgflo.coordinator import Coordinator, CoordinatorOptions, Event, EventKind
from msgflo.transport import QueueKind, get_broker
from tests.brokers import require_broker
from tests.discovery_checks import Upper, clients, connect
from tests.integration.amqp_helpers import Rabbit, url
from tests.integration.run_helpers import Sink

pytestmark = pytest.mark.broker
WAIT = 15.0


def fan_out(prefix: str, *targets: str) -> dict[str, Any]:
    return {
        "processes": {f"{prefix}{n}": {"component": "test/Upper"} for n in ("a", *targets)},
        "connections": [
            {
                "src": {"process": f"{prefix}a", "port": "out"},
                "tgt": {"process": f"{prefix}{t}", "port": "in"},
            }
            for t in targets
        ],
    }


async def run_coordinator(
    broker_url: str, graph: dict[str, Any], state_dir: Path | None
) -> list[str]:
    """Load ``graph``, wait until it is wired, stop; returns what it said."""
    said: list[str] = []
    coordinator = Coordinator(
        get_broker(broker_url),
        options=CoordinatorOptions(broker_url=broker_url, state_dir=state_dir),
    )

    def keep(event: Event) -> None:
        if event.kind in (EventKind.WIRED, EventKind.UNWIRED):
            said.append(event.message)

    coordinator.add_listener(keep)
    await coordinator.start()
    try:
        await coordinator.load_graph(graph)
        assert await coordinator.settled(WAIT), coordinator.wiring
    finally:
        await coordinator.stop()
    return said


@pytest.mark.parametrize("with_state_dir", [False, True], ids=["user-state", "state-dir"])
async def test_edges_removed_while_down_lose_their_bindings(
    vhost: str,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_state_dir: bool,
) -> None:
    require_broker(5672, "RabbitMQ")
    broker_url = url(vhost)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    state_dir = tmp_path / "state" if with_state_dir else None
    a, b, c = (f"{prefix}{n}" for n in "abc")
    async with clients(broker_url) as opened:
        for role in (a, b, c):
            await Upper(role).start(await connect(broker_url, opened))
        await run_coordinator(broker_url, fan_out(prefix, "b", "c"), state_dir)
        rabbit = Rabbit(vhost)
        assert rabbit.bindings_from(f"{a}.OUT") == {f"{b}.IN", f"{c}.IN"}
        record = (
            state_dir / "bindings.json"
            if state_dir
            else next((tmp_path / "xdg" / "msgflo" / "bindings").glob("*.json"))
        )
        assert {e["key"] for e in json.loads(record.read_text())["bindings"]} == {
            f"edge {a}.out -> {b}.in",
            f"edge {a}.out -> {c}.in",
        }

        said = await run_coordinator(broker_url, fan_out(prefix, "b"), state_dir)
        assert (
            f"removed binding {a}.OUT -> {c}.IN left by an earlier run: edge {a}.out -> {c}.in is no longer in the graph"
            in said
        )
        assert rabbit.bindings_from(f"{a}.OUT") == {f"{b}.IN"}
        assert {e["key"] for e in json.loads(record.read_text())["bindings"]} == {
            f"edge {a}.out -> {b}.in"
        }
        sink_b, sink_c = (
            await Sink.on(broker_url, f"{b}.OUT"),
            await Sink.on(broker_url, f"{c}.OUT"),
        )
        try:
            sender = await connect(broker_url, opened)
            await sender.send_to(QueueKind.IN, f"{a}.IN", "once")
            assert await sink_b.get(WAIT) == "ONCE"
            await asyncio.sleep(1.0)
            assert sink_c.received.empty(), "c no longer receives"
        finally:
            await sink_b.close()
            await sink_c.close()


async def test_another_graphs_bindings_on_the_same_broker_stay(
    vhost: str, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two coordinators without a state directory share the record of a broker: each removes
    only entries naming its own nodes."""
    require_broker(5672, "RabbitMQ")
    broker_url = url(vhost)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    first, second = f"{prefix}x", f"{prefix}y"
    async with clients(broker_url) as opened:
        for role in ("a", "b"):
            for graph_prefix in (first, second):
                await Upper(f"{graph_prefix}{role}").start(await connect(broker_url, opened))
        await run_coordinator(broker_url, fan_out(first, "b"), None)
        said = await run_coordinator(broker_url, fan_out(second, "b"), None)
        assert not [line for line in said if "removed binding" in line]
        rabbit = Rabbit(vhost)
        assert rabbit.bindings_from(f"{first}a.OUT") == {f"{first}b.IN"}
        assert rabbit.bindings_from(f"{second}a.OUT") == {f"{second}b.IN"}
