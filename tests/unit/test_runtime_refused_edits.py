"""A refused graph edit leaves the graph as it was: the model, what clients were told, and what
the network runs. Each kind of edit the runtime can refuse is tried on a running graph, then the
graph is compared with its state before, and later commands (start, getsource, edits) work."""

from __future__ import annotations

import json
from typing import Any

import pytest

from msgflo.runtime import MAIN_GRAPH
from tests.unit import test_runtime_support as support
from tests.unit.test_runtime_support import Peer, Rig

peer, rig, rig_factory = support.peer, support.rig, support.rig_factory
G = MAIN_GRAPH


def ref(node: str, port: str) -> dict[str, str]:
    return {"node": node, "port": port}


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


DEEP = nested(300)
"""Parses (orjson reads up to 1024 levels) but cannot be sent back (it writes up to 254)."""


async def setup_graph(peer: Peer) -> None:
    for name, component in (("A", "core/Repeat"), ("B", "core/Drop")):
        reply = await peer.request(
            "graph", "addnode", {"id": name, "component": component, "graph": G}
        )
        assert reply["command"] == "addnode", reply
    for command, payload in (
        ("addedge", {"src": ref("A", "out"), "tgt": ref("B", "in")}),
        ("addinitial", {"src": {"data": "hi"}, "tgt": ref("A", "in")}),
        ("addinport", {"public": "in", "node": "A", "port": "in"}),
        ("addgroup", {"name": "g", "nodes": ["A"]}),
    ):
        reply = await peer.request("graph", command, {**payload, "graph": G})
        assert reply["command"] == command, reply


def network_state(rig: Rig) -> tuple[list[str], list[str], list[str]]:
    """What the coordinator runs: nodes, edges and IIPs."""
    coordinator = rig.coordinator
    return (
        sorted(coordinator.nodes),
        sorted(map(str, coordinator.edges)),
        sorted(map(repr, coordinator.initials.packets)),
    )


REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("addnode", {"id": "C", "component": "core/Repeat", "metadata": {"x": DEEP}}),
    ("addnode", {"id": "A", "component": "core/Repeat"}),
    ("addnode", {"id": "C", "component": "core/Nope"}),
    ("removenode", {"id": "Z"}),
    ("renamenode", {"from": "A", "to": "B"}),
    ("renamenode", {"from": "Z", "to": "Y"}),
    ("changenode", {"id": "A", "metadata": {"x": DEEP}}),
    ("changenode", {"id": "Z", "metadata": {"x": 1}}),
    ("addedge", {"src": ref("A", "out"), "tgt": ref("B", "in")}),
    ("addedge", {"src": ref("A", "nope"), "tgt": ref("B", "in")}),
    ("addedge", {"src": ref("B", "out"), "tgt": ref("A", "in"), "metadata": {"x": DEEP}}),
    ("removeedge", {"src": ref("B", "out"), "tgt": ref("A", "in")}),
    ("changeedge", {"src": ref("A", "out"), "tgt": ref("B", "in"), "metadata": {"x": DEEP}}),
    ("addinitial", {"src": {"data": DEEP}, "tgt": ref("A", "in")}),
    ("addinitial", {"src": {"data": 1}, "tgt": ref("Z", "in")}),
    ("addinitial", {"src": {"data": 1}, "tgt": ref("A", "in"), "metadata": {"x": DEEP}}),
    ("removeinitial", {"tgt": ref("B", "in")}),
    ("addinport", {"public": "in", "node": "B", "port": "in"}),
    ("addinport", {"public": "x", "node": "A", "port": "in", "metadata": {"x": DEEP}}),
    ("renameinport", {"from": "zz", "to": "y"}),
    ("addoutport", {"public": "out", "node": "Z", "port": "out"}),
    ("addgroup", {"name": "h", "nodes": ["A", "Z"]}),
    ("addgroup", {"name": "h", "nodes": ["A"], "metadata": {"x": DEEP}}),
    ("changegroup", {"name": "g", "metadata": {"x": DEEP}}),
    ("renamegroup", {"from": "zz", "to": "y"}),
]


@pytest.mark.parametrize(
    ("command", "payload"), REFUSED, ids=[f"{c}-{i}" for i, (c, _) in enumerate(REFUSED)]
)
async def test_a_refused_edit_leaves_the_graph_as_it_was(
    rig: Rig, peer: Peer, command: str, payload: dict[str, Any]
) -> None:
    await setup_graph(peer)
    before = json.dumps(rig.runtime.graphs[G].to_json(), sort_keys=True)
    wired = network_state(rig)
    reply = await peer.request("graph", command, {**payload, "graph": G})
    assert reply["command"] == "error", reply
    assert json.dumps(rig.runtime.graphs[G].to_json(), sort_keys=True) == before
    assert network_state(rig) == wired
    source = await peer.request("component", "getsource", {"name": "main"}, reply="source")
    assert source["command"] == "source", source
    assert json.loads(source["payload"]["code"]) == json.loads(before)
    started = await peer.request("network", "start", {"graph": G}, reply="started")
    assert started["command"] == "started", started
    later = await peer.request(
        "graph", "addinitial", {"src": {"data": "later"}, "tgt": ref("B", "in"), "graph": G}
    )
    assert later["command"] == "addinitial", later
