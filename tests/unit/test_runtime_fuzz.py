"""Thousands of malformed, unknown or wrongly typed messages: each gets an answer (an error
where it is wrong), every answer is schema-valid, and the runtime, coordinator and network
keep working."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msgflo.runtime import MAIN_GRAPH
from tests.unit.test_runtime_support import Peer, open_rig

COMMANDS = {
    "runtime": ["getruntime", "packet", "ports"],
    "graph": [
        "clear",
        "addnode",
        "removenode",
        "renamenode",
        "changenode",
        "addedge",
        "removeedge",
        "changeedge",
        "addinitial",
        "removeinitial",
        "addinport",
        "removeinport",
        "renameinport",
        "addoutport",
        "removeoutport",
        "renameoutport",
        "addgroup",
        "removegroup",
        "renamegroup",
        "changegroup",
    ],
    "component": ["list", "getsource", "source"],
    "network": ["start", "stop", "getstatus", "edges", "debug", "persist", "data"],
    "trace": ["start", "stop", "clear", "dump"],
    "bogus": ["x"],
}
KEYS = [
    "graph",
    "id",
    "component",
    "metadata",
    "src",
    "tgt",
    "from",
    "to",
    "public",
    "node",
    "port",
    "name",
    "nodes",
    "edges",
    "event",
    "payload",
    "language",
    "code",
    "type",
    "main",
    "buffersize",
    "enable",
    "secret",
]

json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
field_value = st.one_of(
    json_value,
    st.sampled_from([MAIN_GRAPH, "a", "core/Repeat", "in", "out"]),
    st.fixed_dictionaries(
        {"node": st.sampled_from(["a", "b", "zz"]), "port": st.sampled_from(["in", "out", "x"])}
    ),
    st.fixed_dictionaries({"data": json_value}),
)
payload = st.one_of(json_value, st.dictionaries(st.sampled_from(KEYS), field_value, max_size=6))


@st.composite
def envelope(draw: st.DrawFn) -> str:
    protocol = draw(st.sampled_from(sorted(COMMANDS)) | st.text(max_size=6))
    command = draw(st.sampled_from(COMMANDS.get(protocol, ["x"])) | st.text(max_size=6))
    message: dict[str, Any] = {"protocol": protocol, "command": command, "payload": draw(payload)}
    for key in draw(st.sets(st.sampled_from(["protocol", "command", "payload"]), max_size=1)):
        del message[key]
    return json.dumps(message)


frames = st.one_of(
    st.text(max_size=20),
    json_value.map(json.dumps),
    envelope(),
    envelope(),
    envelope(),
)


async def exchange(peer: Peer, frame: str) -> list[dict[str, Any]]:
    """Send ``frame``, then a marker request; what comes before the marker's reply answers
    ``frame`` (the runtime handles a client's frames in order)."""
    await peer.send_raw(frame)
    marker = uuid.uuid4().hex
    await peer.send("network", "getstatus", {"graph": MAIN_GRAPH}, requestId=marker)
    answers = []
    while (message := await peer.receive()).get("responseTo") != marker:
        answers.append(message)
    return answers


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(frames, min_size=100, max_size=140))
def test_every_frame_is_answered_and_the_runtime_stays_up(batch: list[str], tmp_path: Path) -> None:
    async def run() -> None:
        name = f"memory://fuzz{uuid.uuid4().hex[:8]}"
        async with open_rig(name, tmp_path, ready_timeout=0.01) as rig:
            peer = await rig.connect()
            await peer.request(
                "graph", "addnode", {"id": "a", "component": "core/Repeat", "graph": MAIN_GRAPH}
            )
            for frame in batch:
                answers = await exchange(peer, frame)
                assert answers, f"no answer to {frame!r}"
            reply = await peer.request("runtime", "getruntime", reply="runtime")
            assert reply["payload"]["type"] == "msgflo"
            await peer.request("network", "start", {"graph": MAIN_GRAPH}, reply="started")
            await peer.request(
                "graph", "addnode", {"id": "alive", "component": "core/Repeat", "graph": MAIN_GRAPH}
            )
            await rig.participant("core/Repeat", "alive")
            while (await peer.until("graph", "changenode"))["payload"]["id"] != "alive":
                pass

    asyncio.run(run())


async def test_bad_input_gets_an_error_naming_the_problem(tmp_path: Path) -> None:
    async with open_rig(f"memory://bad{uuid.uuid4().hex[:8]}", tmp_path) as rig:
        peer = await rig.connect()
        cases = [
            ("{not json", "runtime", "message is not JSON"),
            ("[1, 2]", "runtime", "message must be a JSON object"),
            ('{"payload": {}}', "runtime", "message needs 'protocol' and 'command' strings"),
            ('{"protocol": "ftp", "command": "get"}', "runtime", "Protocol ftp is not supported"),
            ('{"protocol": "graph", "command": "explode"}', "graph", "graph:explode not supported"),
            (
                '{"protocol": "graph", "command": "clear", "payload": 3}',
                "graph",
                "graph:clear: 'payload' must be an object",
            ),
            (
                '{"protocol": "graph", "command": "clear", "payload": {"id": 3}}',
                "graph",
                "graph:clear: 'id' must be a string",
            ),
            (
                '{"protocol": "network", "command": "start", "payload": {"graph": "x"}}',
                "network",
                "Requested graph not found",
            ),
        ]
        for frame, protocol, message in cases:
            (answer, *_) = await exchange(peer, frame)
            assert (answer["protocol"], answer["command"]) == (protocol, "error"), frame
            assert answer["payload"]["message"].startswith(message), answer


async def test_a_client_leaving_mid_request_leaves_nothing_half_done(tmp_path: Path) -> None:
    async with open_rig(f"memory://gone{uuid.uuid4().hex[:8]}", tmp_path) as rig:
        leaving = await rig.connect()
        for index in range(20):
            await leaving.send(
                "graph",
                "addnode",
                {"id": f"n{index}", "component": "core/Repeat", "graph": MAIN_GRAPH},
            )
        await leaving.ws.close()
        staying = await rig.connect()
        reply = await staying.request(
            "component", "getsource", {"name": MAIN_GRAPH}, reply="source"
        )
        nodes = json.loads(reply["payload"]["code"])["processes"]
        assert sorted(nodes) == sorted(rig.coordinator.nodes)


def _deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = {"v": value}
    return value


names = st.sampled_from(["a", "b", "c"])
port_ref = st.fixed_dictionaries({"node": names, "port": st.sampled_from(["in", "out"])})
edit_value = st.one_of(json_value, st.sampled_from([260, 300]).map(_deep))
"""Mostly plain values; sometimes one that orjson reads but cannot write back."""
graph_edit = st.one_of(
    st.tuples(
        st.just("addnode"),
        st.fixed_dictionaries(
            {"id": names, "component": st.sampled_from(["core/Repeat", "core/Nope"])},
            optional={"metadata": st.dictionaries(st.text(max_size=3), edit_value, max_size=2)},
        ),
    ),
    st.tuples(st.just("removenode"), st.fixed_dictionaries({"id": names})),
    st.tuples(st.just("renamenode"), st.fixed_dictionaries({"from": names, "to": names})),
    st.tuples(
        st.just("changenode"),
        st.fixed_dictionaries({"id": names, "metadata": st.dictionaries(names, edit_value)}),
    ),
    st.tuples(st.just("addedge"), st.fixed_dictionaries({"src": port_ref, "tgt": port_ref})),
    st.tuples(st.just("removeedge"), st.fixed_dictionaries({"src": port_ref, "tgt": port_ref})),
    st.tuples(
        st.just("addinitial"),
        st.fixed_dictionaries(
            {"src": st.fixed_dictionaries({"data": edit_value}), "tgt": port_ref}
        ),
    ),
    st.tuples(st.just("removeinitial"), st.fixed_dictionaries({"tgt": port_ref})),
    st.tuples(
        st.just("addinport"),
        st.fixed_dictionaries({"public": names, "node": names, "port": st.just("in")}),
    ),
    st.tuples(
        st.just("addgroup"),
        st.fixed_dictionaries({"name": names, "nodes": st.lists(names, max_size=2)}),
    ),
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(edits=st.lists(graph_edit, min_size=10, max_size=40))
def test_an_edit_either_happens_or_leaves_the_graph_as_it_was(
    edits: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    async def run() -> None:
        async with open_rig(f"memory://tx{uuid.uuid4().hex[:8]}", tmp_path) as rig:
            peer = await rig.connect()
            graph = rig.runtime.graphs[MAIN_GRAPH]
            for command, payload in edits:
                before = json.dumps(graph.to_json(), sort_keys=True)
                reply = await peer.request("graph", command, {**payload, "graph": MAIN_GRAPH})
                if reply["command"] == "error":
                    assert json.dumps(graph.to_json(), sort_keys=True) == before, command
                source = await peer.request(
                    "component", "getsource", {"name": MAIN_GRAPH}, reply="source"
                )
                assert json.loads(source["payload"]["code"]) == graph.to_json()
                assert sorted(rig.coordinator.nodes) == sorted(graph.nodes)
            started = await peer.request("network", "start", {"graph": MAIN_GRAPH}, reply="started")
            assert started["command"] == "started", started

    asyncio.run(run())
