"""The `network` and `trace` sub-protocols and `runtime:packet` through exported ports."""

from __future__ import annotations

import json

from msgflo.runtime import MAIN_GRAPH
from tests.unit import test_runtime_support as support
from tests.unit.test_runtime_support import Peer, Rig

peer, rig, rig_factory = support.peer, support.rig, support.rig_factory
G = MAIN_GRAPH


def ref(node: str, port: str) -> dict[str, str]:
    return {"node": node, "port": port}


async def build(peer: Peer, graph: str) -> None:
    await peer.request("graph", "clear", {"id": graph})
    await peer.request("graph", "addnode", {"id": "a", "component": "core/Repeat", "graph": graph})
    await peer.request("graph", "addnode", {"id": "b", "component": "core/Repeat", "graph": graph})
    await peer.request(
        "graph", "addedge", {"src": ref("a", "out"), "tgt": ref("b", "in"), "graph": graph}
    )
    await peer.request(
        "graph", "addinport", {"public": "in", "node": "a", "port": "in", "graph": graph}
    )
    await peer.request(
        "graph", "addoutport", {"public": "out", "node": "b", "port": "out", "graph": graph}
    )


async def test_start_status_stop_follow_the_network(rig: Rig, peer: Peer) -> None:
    await build(peer, "net")
    assert (await peer.request("network", "getstatus", {"graph": "net"}, reply="status"))[
        "payload"
    ] == {"graph": "net", "started": False, "running": False}
    started = await peer.request("network", "start", {"graph": "net"}, reply="started")
    assert started["payload"]["started"] is True
    assert started["payload"]["running"] is True  # its participants have not announced yet
    assert set(rig.coordinator.nodes) == {"a", "b"}
    await rig.participant("core/Repeat", "a")
    await rig.participant("core/Repeat", "b")
    assert await rig.runtime.wait_ready(5)
    status = await peer.request("network", "getstatus", {"graph": "net"}, reply="status")
    assert status["payload"] == {"graph": "net", "started": True, "running": False}
    stopped = await peer.request("network", "stop", {"graph": "net"}, reply="stopped")
    assert stopped["payload"]["started"] is False
    assert rig.coordinator.nodes == {}
    status = await peer.request("network", "getstatus", {"graph": "net"}, reply="status")
    assert status["payload"] == {"graph": "net", "started": False, "running": False}


async def test_packets_in_and_out_of_exported_ports(rig: Rig, peer: Peer) -> None:
    await build(peer, "net")
    await peer.request("network", "start", {"graph": "net"}, reply="started")
    await rig.participant("core/Repeat", "a")
    await rig.participant("core/Repeat", "b")
    sent = await peer.request(
        "runtime",
        "packet",
        {"port": "in", "event": "data", "payload": [1, 2], "graph": "net"},
        reply="packetsent",
    )
    assert sent["payload"] == {"port": "in", "event": "data", "payload": [1, 2], "graph": "net"}
    out = await peer.until("runtime", "packet")
    assert out["payload"] == {"port": "out", "event": "data", "payload": [1, 2], "graph": "net"}
    assert "responseTo" not in out
    data = [m for m in peer.seen if m["command"] == "data"]
    assert data[0]["payload"]["id"] == "a() OUT -> IN b()"
    assert await peer.error(
        "runtime", "packet", {"port": "nope", "event": "data", "graph": "net"}
    ) == ("runtime:packet: graph net has no exported inport 'nope'")
    assert await peer.error(
        "runtime", "packet", {"port": "in", "event": "shout", "graph": "net"}
    ) == ("runtime:packet: unknown event 'shout'")


async def test_edges_selection_is_confirmed_to_everyone(rig: Rig, peer: Peer) -> None:
    await build(peer, "net")
    other = await rig.connect()
    selection = [{"src": ref("a", "out"), "tgt": ref("b", "in")}]
    reply = await peer.request("network", "edges", {"graph": "net", "edges": selection})
    assert reply["payload"] == {"graph": "net", "edges": selection}
    assert (await other.until("network", "edges"))["payload"]["edges"] == selection
    assert "no edge b.out -> a.in" in await peer.error(
        "network",
        "edges",
        {"graph": "net", "edges": [{"src": ref("b", "out"), "tgt": ref("a", "in")}]},
    )


async def test_processerror_and_output_reach_clients(rig: Rig, peer: Peer) -> None:
    from msgflo.coordinator import Event, EventKind

    await peer.request("graph", "addnode", {"id": "a", "component": "core/Repeat", "graph": G})
    rig.coordinator._emit(Event(EventKind.OUTPUT, "a", "hello", {"stream": "stdout"}))
    output = await peer.until("network", "output")
    assert output["payload"] == {"message": "a | hello", "type": "message"}
    rig.coordinator._emit(Event(EventKind.PROCESS_EXITED, "a", "a: exited with code 1"))
    error = await peer.until("network", "processerror")
    assert error["payload"] == {"id": "a", "error": "a: exited with code 1", "graph": G}


async def test_trace_records_network_events_as_flowtrace(rig: Rig, peer: Peer) -> None:
    await build(peer, "net")
    assert (await peer.request("trace", "start", {"graph": "net", "buffersize": 1000}))[
        "payload"
    ] == {
        "graph": "net",
        "buffersize": 1000,
    }
    await peer.request("network", "start", {"graph": "net"}, reply="started")
    await rig.participant("core/Repeat", "a")
    await rig.participant("core/Repeat", "b")
    await peer.request(
        "runtime",
        "packet",
        {"port": "in", "event": "data", "payload": "x", "graph": "net"},
        reply="packetsent",
    )
    await peer.until("runtime", "packet")
    await peer.request("trace", "stop", {"graph": "net"})
    dump = await peer.request("trace", "dump", {"graph": "net", "type": "flowtrace.json"})
    trace = json.loads(dump["payload"]["flowtrace"])
    assert trace["header"]["main"] == "net"
    assert "a" in trace["header"]["graphs"]["net"]["processes"]
    commands = [(e["protocol"], e["command"]) for e in trace["events"]]
    assert ("network", "started") in commands and ("network", "data") in commands
    await peer.request("trace", "clear", {"graph": "net"})
    dump = await peer.request("trace", "dump", {"graph": "net", "type": "flowtrace.json"})
    assert json.loads(dump["payload"]["flowtrace"])["events"] == []
    assert "unknown type" in await peer.error("trace", "dump", {"graph": "net", "type": "x"})


async def test_trace_keeps_only_the_newest_buffersize_events(rig: Rig, peer: Peer) -> None:
    await build(peer, "net")
    await peer.request("trace", "start", {"graph": "net", "buffersize": 3})
    await peer.request("network", "start", {"graph": "net"}, reply="started")
    await rig.participant("core/Repeat", "a")
    await rig.participant("core/Repeat", "b")
    for text in ("one", "two", "three", "four"):
        await peer.request(
            "runtime",
            "packet",
            {"port": "in", "event": "data", "payload": text, "graph": "net"},
            reply="packetsent",
        )
        await peer.until("runtime", "packet")
    dump = await peer.request("trace", "dump", {"graph": "net", "type": "flowtrace.json"})
    events = json.loads(dump["payload"]["flowtrace"])["events"]
    assert len(events) == 3
    assert events[-1]["command"] == "data" and "four" in json.dumps(events[-1]["payload"])
