"""The `graph` sub-protocol: fbp-graph semantics, several graphs, errors, live changes that
reach the broker, and auto-save."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from msgflo.graph import load_graph, parse_fbp
from msgflo.runtime import MAIN_GRAPH
from tests.unit import test_runtime_support as support
from tests.unit.test_runtime_support import Peer, Rig

peer, rig, rig_factory = support.peer, support.rig, support.rig_factory
G = MAIN_GRAPH


def ref(node: str, port: str) -> dict[str, str]:
    return {"node": node, "port": port}


async def test_clear_keeps_several_graphs_and_marks_the_main_one(rig: Rig, peer: Peer) -> None:
    reply = await peer.request(
        "graph", "clear", {"id": "foo", "main": True, "name": "Foo graph", "baseDir": "/x"}
    )
    assert reply["payload"] == {"id": "foo", "main": True, "name": "Foo graph"}
    other = await peer.request("graph", "clear", {"id": "bar", "library": "lib", "icon": ""})
    assert other["payload"] == {"id": "bar", "library": "lib", "icon": "", "main": False}
    assert {"foo", "bar", G} <= set(rig.runtime.graphs)
    runtime = await peer.request("runtime", "getruntime", reply="runtime")
    assert runtime["payload"]["graph"] == "foo"


async def test_node_edge_iip_lifecycle_as_fbp_test_expects(peer: Peer) -> None:
    await peer.request("graph", "clear", {"id": "foo"})
    added = await peer.request(
        "graph",
        "addnode",
        {"id": "A", "component": "core/Repeat", "metadata": {"x": 1}, "graph": "foo"},
    )
    assert added["payload"] == {
        "id": "A",
        "component": "core/Repeat",
        "metadata": {"x": 1},
        "graph": "foo",
    }
    await peer.request("graph", "addnode", {"id": "B", "component": "core/Drop", "graph": "foo"})
    edge = await peer.request(
        "graph",
        "addedge",
        {"src": ref("A", "out"), "tgt": ref("B", "in"), "metadata": {"route": 5}, "graph": "foo"},
    )
    assert edge["payload"]["metadata"] == {"route": 5}
    for change, expected in (
        ({"sort": 1}, {"x": 1, "sort": 1}),
        ({}, {"x": 1, "sort": 1}),
        ({"sort": None, "x": None}, {}),
    ):
        reply = await peer.request(
            "graph", "changenode", {"id": "A", "metadata": change, "graph": "foo"}
        )
        assert reply["payload"]["metadata"] == expected
    changed = await peer.request(
        "graph",
        "changeedge",
        {"src": ref("A", "out"), "tgt": ref("B", "in"), "metadata": {"route": 2}, "graph": "foo"},
    )
    assert changed["payload"]["metadata"] == {"route": 2}
    await peer.request(
        "graph", "addinitial", {"src": {"data": "hi"}, "tgt": ref("A", "in"), "graph": "foo"}
    )
    await peer.request(
        "graph", "addinport", {"public": "in", "node": "B", "port": "in", "graph": "foo"}
    )
    await peer.request("graph", "addgroup", {"name": "g", "nodes": ["A", "B"], "graph": "foo"})
    await peer.send("graph", "removenode", {"id": "B", "graph": "foo"})
    cascade = []
    while (message := await peer.receive())["command"] != "removenode":
        cascade.append(message["command"])
    assert cascade == ["removeedge", "removeinport", "changegroup"]
    removed = await peer.request("graph", "removeinitial", {"tgt": ref("A", "in"), "graph": "foo"})
    assert removed["payload"] == {"src": {"data": "hi"}, "tgt": ref("A", "in"), "graph": "foo"}
    renamed = await peer.request("graph", "renamenode", {"from": "A", "to": "A2", "graph": "foo"})
    assert renamed["payload"] == {"from": "A", "to": "A2", "graph": "foo"}


async def test_exported_ports_and_groups(rig: Rig, peer: Peer) -> None:
    await peer.request("graph", "addnode", {"id": "A", "component": "core/Repeat", "graph": G})
    inport = await peer.request(
        "graph", "addinport", {"public": "IN", "node": "A", "port": "in", "graph": G}
    )
    assert inport["payload"] == {"public": "IN", "node": "A", "port": "in", "graph": G}
    await peer.request(
        "graph",
        "addoutport",
        {"public": "OUT", "node": "A", "port": "out", "graph": G, "metadata": {"x": 1}},
    )
    ports = await peer.until("runtime", "ports")
    assert ports["payload"]["inPorts"] == [{"id": "IN", "type": "all"}]
    await peer.request("graph", "renameinport", {"from": "IN", "to": "input", "graph": G})
    await peer.request("graph", "renameoutport", {"from": "OUT", "to": "output", "graph": G})
    assert list(rig.runtime.graphs[G].inports) == ["input"]
    await peer.request("graph", "removeinport", {"public": "input", "graph": G})
    await peer.request("graph", "removeoutport", {"public": "output", "graph": G})
    group = await peer.request(
        "graph",
        "addgroup",
        {"name": "box", "nodes": ["A"], "metadata": {"description": "d"}, "graph": G},
    )
    assert group["payload"]["nodes"] == ["A"]
    await peer.request("graph", "renamegroup", {"from": "box", "to": "crate", "graph": G})
    changed = await peer.request(
        "graph", "changegroup", {"name": "crate", "metadata": {"color": 1}, "graph": G}
    )
    assert changed["payload"]["metadata"] == {"description": "d", "color": 1}
    await peer.request("graph", "removegroup", {"name": "crate", "graph": G})
    assert rig.runtime.graphs[G].groups == []


async def test_errors_name_the_problem_and_change_nothing(rig: Rig, peer: Peer) -> None:
    await peer.request("graph", "addnode", {"id": "A", "component": "core/Repeat", "graph": G})
    cases = [
        (
            "addnode",
            {"id": "X", "component": "core/Repeat", "graph": "nope"},
            "Requested graph not found",
        ),
        ("addnode", {"id": "X", "component": "core/Repeat"}, "No graph specified"),
        (
            "addnode",
            {"id": "X", "component": "core/Nope", "graph": G},
            "graph:addnode: unknown component 'core/Nope'",
        ),
        (
            "addnode",
            {"id": "A", "component": "core/Repeat", "graph": G},
            "a node named 'A' already exists",
        ),
        (
            "addnode",
            {"id": 5, "component": "core/Repeat", "graph": G},
            "graph:addnode: 'id' must be a string",
        ),
        ("removenode", {"id": "Z", "graph": G}, "no node named 'Z'"),
        (
            "addedge",
            {"src": ref("A", "nope"), "tgt": ref("A", "in"), "graph": G},
            "node A (core/Repeat) has no outport 'nope' (has: out, dead_in)",
        ),
        (
            "addedge",
            {"src": ref("Z", "out"), "tgt": ref("A", "in"), "graph": G},
            "no node named 'Z'",
        ),
        (
            "addedge",
            {"src": "A.out", "tgt": ref("A", "in"), "graph": G},
            "graph:addedge: 'src' must be an object with 'node' and 'port'",
        ),
        (
            "addinitial",
            {"src": {}, "tgt": ref("A", "in"), "graph": G},
            "graph:addinitial: 'src' needs 'data'",
        ),
        ("changenode", {"id": "A", "graph": G}, "graph:changenode: 'metadata' is missing"),
        ("removeinitial", {"tgt": ref("A", "in"), "graph": G}, "no IIP to A.in"),
        (
            "addgroup",
            {"name": "g", "nodes": "A", "graph": G},
            "graph:addgroup: 'nodes' must be a list of strings",
        ),
    ]
    for command, payload, message in cases:
        assert await peer.error("graph", command, payload) == message
    assert list(rig.runtime.graphs[G].nodes) == ["A"]
    assert list(rig.coordinator.nodes) == ["A"]


async def test_live_changes_reach_the_coordinator_and_broker(rig: Rig, peer: Peer) -> None:
    """addnode adds the node, the participant's announcement wires the edge, addinitial sends
    (network:data shows it), data on the edge is reported, removal unbinds; metadata counts
    the live instances."""
    await peer.request("graph", "addnode", {"id": "a", "component": "core/Repeat", "graph": G})
    await peer.request("graph", "addnode", {"id": "b", "component": "core/Repeat", "graph": G})
    await peer.request(
        "graph", "addedge", {"src": ref("a", "out"), "tgt": ref("b", "in"), "graph": G}
    )
    assert set(rig.coordinator.nodes) == {"a", "b"}
    await rig.participant("core/Repeat", "a")
    await rig.participant("core/Repeat", "b")
    count = await peer.until("graph", "changenode")
    assert count["payload"]["metadata"] == {"instances": 1}
    await peer.request(
        "graph", "addinitial", {"src": {"data": {"n": 1}}, "tgt": ref("a", "in"), "graph": G}
    )
    iip = await peer.until("network", "data")
    assert iip["payload"] == {
        "id": "DATA -> IN a()",
        "graph": G,
        "tgt": ref("a", "in"),
        "data": {"n": 1},
    }
    edge = await peer.until("network", "data")
    assert edge["payload"]["id"] == "a() OUT -> IN b()"
    assert edge["payload"]["data"] == {"n": 1}
    await peer.request(
        "graph", "removeedge", {"src": ref("a", "out"), "tgt": ref("b", "in"), "graph": G}
    )
    assert rig.coordinator.edges == []
    await peer.request("graph", "removenode", {"id": "b", "graph": G})
    assert set(rig.coordinator.nodes) == {"a"}
    await peer.request("graph", "renamenode", {"from": "a", "to": "c", "graph": G})
    assert set(rig.coordinator.nodes) == {"c"}


async def test_auto_save_writes_the_graph_in_its_own_format(
    rig_factory: Callable[..., Any], tmp_path: Path
) -> None:
    fbp = tmp_path / "net.fbp"
    fbp.write_text("a(core/Repeat) OUT -> IN b(core/Drop)\n")
    made: Rig = await rig_factory(graph=load_graph(fbp), graph_file=fbp, auto_save=True)
    client = await made.connect()
    await client.request("graph", "addnode", {"id": "c", "component": "core/Drop", "graph": G})
    await client.request(
        "graph", "addedge", {"src": ref("a", "out"), "tgt": ref("c", "in"), "graph": G}
    )
    await client.request("network", "getstatus", {"graph": G}, reply="status")
    saved = parse_fbp(fbp.read_text())
    assert set(saved.nodes) == {"a", "b", "c"}
    assert len(saved.edges) == 2
    assert "instances" not in fbp.read_text()
    assert sorted(p.name for p in tmp_path.glob("*net*")) == ["net.fbp"]  # noqa: ASYNC240


async def test_persist_saves_json_graphs(rig_factory: Callable[..., Any], tmp_path: Path) -> None:
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"processes": {"a": {"component": "core/Repeat"}}}))
    made: Rig = await rig_factory(graph=load_graph(path), graph_file=path)
    client = await made.connect()
    await client.request("graph", "changenode", {"id": "a", "metadata": {"x": 3}, "graph": G})
    assert "x" not in path.read_text()
    await client.request("network", "persist", {})
    assert json.loads(path.read_text())["processes"]["a"]["metadata"] == {"x": 3}
