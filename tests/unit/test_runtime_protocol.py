"""The `runtime` and `component` sub-protocols, the server (page, subprotocols, several
clients) and access control, over a real WebSocket."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from msgflo.runtime import MAIN_GRAPH, Access, Level
from tests.unit import test_runtime_support as support
from tests.unit.test_runtime_support import Peer, Rig

peer, rig, rig_factory = support.peer, support.rig, support.rig_factory


async def test_getruntime_describes_the_runtime(peer: Peer) -> None:
    reply = await peer.request("runtime", "getruntime", reply="runtime")
    payload = reply["payload"]
    assert payload["type"] == "msgflo"
    assert float(payload["version"]) >= 0.7
    assert payload["id"] == "rt-test"
    assert payload["label"] == "test runtime"
    assert payload["graph"] == MAIN_GRAPH
    for capability in (
        "protocol:graph",
        "protocol:network",
        "protocol:component",
        "protocol:runtime",
    ):
        assert capability in payload["capabilities"]
    assert "responseTo" in reply


async def test_page_says_what_runtime_this_is(rig: Rig) -> None:
    response = await rig.http.get("/")
    text = await response.text()
    assert response.status == 200
    assert "msgflo" in text and "rt-test" in text and "ws://" in text


async def test_clients_with_and_without_subprotocol_share_changes(rig: Rig) -> None:
    first = await rig.connect(("noflo",))
    second = await rig.connect(())
    assert first.ws.protocol == "noflo"
    assert second.ws.protocol is None
    await first.request("graph", "clear", {"id": "g"})
    seen = await second.until("graph", "clear")
    assert seen["payload"] == {"id": "g", "main": False}
    assert "responseTo" not in seen


async def test_component_list_has_typed_ports_and_ends_with_count(peer: Peer) -> None:
    await peer.send("component", "list")
    components = []
    while (message := await peer.receive())["command"] == "component":
        components.append(message["payload"])
    assert message["command"] == "componentsready"
    assert message["payload"] == len(components) == 2
    repeat = next(c for c in components if c["name"] == "core/Repeat")
    assert repeat["icon"] == "forward"
    assert repeat["description"] == "Sends on what it gets."
    assert repeat["inPorts"] == [{"id": "in", "type": "all"}]
    assert repeat["outPorts"] == [{"id": "out", "type": "all"}, {"id": "dead_in", "type": "all"}]


async def test_getsource_of_graph_component_and_declaration(rig: Rig, peer: Peer) -> None:
    await peer.request(
        "graph", "addnode", {"id": "r", "component": "core/Repeat", "graph": MAIN_GRAPH}
    )
    graph = await peer.request("component", "getsource", {"name": MAIN_GRAPH}, reply="source")
    assert graph["payload"]["language"] == "json"
    assert '"r"' in graph["payload"]["code"]
    declared = await peer.request("component", "getsource", {"name": "core/Drop"}, reply="source")
    assert declared["payload"]["language"] == "yaml"
    assert "component: core/Drop" in declared["payload"]["code"]
    (rig.library.root / "components" / "Tool.py").write_text("print('tool')\n")
    rig.library.add_file(Path("components/Tool.py"))
    source = await peer.request("component", "getsource", {"name": "core/Tool"}, reply="source")
    assert source["payload"] == {
        "name": "Tool",
        "library": "core",
        "language": "python",
        "code": "print('tool')\n",
    }
    message = await peer.error("component", "getsource", {"name": "core/Nothing"})
    assert "core/Nothing" in message


async def test_source_writes_the_file_and_the_component_appears(rig: Rig) -> None:
    writer, watcher = await rig.connect(), await rig.connect()
    code = "inports:\n  in: {type: string}\noutports: {}\ncomponent: core/Sink\n"
    reply = await writer.request(
        "component", "source", {"name": "Sink", "language": "yaml", "code": code}, reply="component"
    )
    assert reply["payload"]["name"] == "core/Sink"
    assert reply["payload"]["inPorts"] == [{"id": "in", "type": "string"}]
    assert (rig.library.root / "components" / "Sink.yml").read_text() == code
    assert (await watcher.until("component", "component"))["payload"]["name"] == "core/Sink"
    bad = await writer.error(
        "component", "source", {"name": "core/..", "language": "python", "code": "x"}
    )
    assert "'..' is not a usable component name" in bad
    assert (
        await writer.error(
            "component", "source", {"name": "Sink", "language": "cobol", "code": "x"}
        )
        == "component:source: unknown language 'cobol' (known: c++, coffeescript, javascript, python, rust, shell, yaml)"
    )


async def test_reannounced_ports_update_the_component(rig: Rig, peer: Peer) -> None:
    participant = await rig.participant("core/Repeat", "r1")
    participant.definition["inports"].append({"id": "extra", "type": "number", "queue": "r1.EXTRA"})
    await participant.announce()
    message = await peer.until("component", "component")
    assert {"id": "extra", "type": "number"} in message["payload"]["inPorts"]


async def test_secret_levels(rig_factory: Callable[..., Any]) -> None:
    rig = await rig_factory(access=Access({"full-s": Level.FULL, "read-s": Level.READ}, Level.NONE))
    anonymous, reader, writer = await rig.connect(), await rig.connect(), await rig.connect()
    runtime = await anonymous.request("runtime", "getruntime", reply="runtime")
    assert runtime["payload"]["capabilities"] == []
    assert "protocol:graph" in runtime["payload"]["allCapabilities"]
    assert await anonymous.error("graph", "clear", {"id": "x"}) == "graph:clear is not permitted"
    read = await reader.request("runtime", "getruntime", {"secret": "read-s"}, reply="runtime")
    assert "graph:readonly" in read["payload"]["capabilities"]
    assert "protocol:graph" not in read["payload"]["capabilities"]
    await reader.send("graph", "clear", {"id": "x"}, secret="read-s")
    assert (await reader.receive())["payload"]["message"] == "graph:clear is not permitted"
    await writer.send("graph", "clear", {"id": "x", "secret": "full-s"}, secret="full-s")
    clear = await writer.until("graph", "clear")
    assert "full-s" not in str(clear)
    followed = await reader.until("graph", "clear")
    assert followed["payload"]["id"] == "x"
    await writer.send("graph", "clear", {"id": "y"}, secret="wrong")
    assert (await writer.receive())["payload"]["message"] == "graph:clear: invalid secret"
    assert "y" not in rig.runtime.graphs


def test_access_configuration(tmp_path: Path) -> None:
    assert Access.configure(None, None, None).default is Level.FULL
    assert Access.configure("s", None, None).default is Level.NONE
    assert Access.configure("s", None, "read").level("") is Level.READ
    secrets = tmp_path / "secrets.yml"
    secrets.write_text("alpha: read\nbeta: full\n")
    access = Access.configure(None, secrets, None)
    assert access.level("alpha") is Level.READ
    assert access.level("beta") is Level.FULL
    assert access.level("gamma") is None
    secrets.write_text("alpha: admin\n")
    try:
        Access.configure(None, secrets, None)
    except Exception as exc:
        assert "entry 1: level must be 'read' or 'full'" in str(exc)
    else:
        raise AssertionError("a bad level was accepted")
