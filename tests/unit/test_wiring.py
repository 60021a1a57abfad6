"""Graph edges → bindings, without a broker."""

from __future__ import annotations

from typing import Any

import pytest

from msgflo.transport import Binding, BindingType
from msgflo.wiring import (
    Direction,
    GraphSpec,
    Status,
    WiringError,
    convention_resolver,
    discovery_resolver,
    find_queue,
    plan,
    pretty_format,
)


def definition(role: str, inports: dict[str, str], outports: dict[str, str]) -> dict[str, Any]:
    return {
        "id": f"{role}-1",
        "role": role,
        "component": "X",
        "inports": [{"id": k, "queue": v} for k, v in inports.items()],
        "outports": [{"id": k, "queue": v} for k, v in outports.items()],
    }


def graph(processes: dict[str, str], *edges: tuple[str, str, str, str]) -> GraphSpec:
    return GraphSpec.from_json(
        {
            "processes": {name: {"component": c} for name, c in processes.items()},
            "connections": [
                {"src": {"process": a, "port": p}, "tgt": {"process": b, "port": q}}
                for a, p, b, q in edges
            ],
        }
    )


def test_queue_names_come_from_discovery_not_convention() -> None:
    g = graph({"sw": "Switch", "lamp": "Lamp"}, ("sw", "status", "lamp", "in"))
    defs = {
        "sw": definition("sw", {}, {"status": "/myswitch/baar/1/status"}),
        "lamp": definition("lamp", {"in": "/lamp/1/set"}, {}),
    }
    [planned] = plan(g, discovery_resolver(defs))
    assert planned.status is Status.BOUND
    assert planned.binding == Binding("/myswitch/baar/1/status", "/lamp/1/set")


def test_edge_waits_for_an_undiscovered_role() -> None:
    g = graph({"a": "A", "b": "B"}, ("a", "out", "b", "in"))
    [planned] = plan(g, discovery_resolver({"a": definition("a", {}, {"out": "a.OUT"})}))
    assert planned.status is Status.PENDING
    assert "b" in planned.detail
    assert planned.binding is None


def test_unknown_port_is_an_error_naming_node_and_port_and_the_rest_is_planned() -> None:
    g = graph({"a": "A", "b": "B"}, ("a", "nope", "b", "in"), ("a", "out", "b", "in"))
    defs = {
        "a": definition("a", {}, {"out": "a.OUT"}),
        "b": definition("b", {"in": "b.IN"}, {}),
    }
    bad, good = plan(g, discovery_resolver(defs))
    assert bad.status is Status.ERROR
    assert "a" in bad.detail and "'nope'" in bad.detail and "out" in bad.detail
    assert good.binding == Binding("a.OUT", "b.IN")


def test_ports_match_case_insensitively() -> None:
    """The .fbp parser lower-cases port names; participants may announce IN/OUT."""
    assert find_queue(definition("a", {"IN": "q"}, {}), Direction.IN, "in") == "q"


def test_coinciding_queues_are_connected_without_a_binding() -> None:
    g = graph({"a": "A", "b": "B"}, ("a", "out", "b", "in"))
    defs = {
        "a": definition("a", {}, {"out": "shared"}),
        "b": definition("b", {"in": "shared"}, {}),
    }
    [planned] = plan(g, discovery_resolver(defs))
    assert planned.status is Status.CONNECTED
    assert planned.binding is None


def test_static_mode_uses_the_role_port_convention() -> None:
    g = graph({"a": "A", "b": "B"}, ("a", "out", "b", "in"))
    [planned] = plan(g, convention_resolver)
    assert planned.binding == Binding("a.OUT", "b.IN")


def test_roundrobin_node_is_one_binding_with_deadletter() -> None:
    g = graph(
        {"api": "Api", "rr": "msgflo/RoundRobin", "worker": "W", "drop": "D"},
        ("api", "newjob", "rr", "in"),
        ("rr", "out", "worker", "job"),
        ("rr", "deadletter", "drop", "in"),
    )
    [planned] = plan(g, convention_resolver)
    assert planned.status is Status.BOUND
    assert planned.binding == Binding(
        "api.NEWJOB", "worker.JOB", BindingType.ROUNDROBIN, deadletter="drop.IN"
    )
    assert len(planned.edges) == 3
    assert pretty_format([planned.binding]).splitlines() == [
        "DEADLETTER:\t worker.JOB -> drop.IN",
        "ROUNDROBIN:\t api.NEWJOB -> worker.JOB",
    ]


def test_roundrobin_waits_for_its_participants_instead_of_for_itself() -> None:
    """The original waited for a participant with the RoundRobin node's role and timed out."""
    g = graph(
        {"api": "Api", "rr": "msgflo/RoundRobin", "worker": "W"},
        ("api", "newjob", "rr", "in"),
        ("rr", "out", "worker", "job"),
    )
    defs = {"api": definition("api", {}, {"newjob": "api.NEWJOB"})}
    [planned] = plan(g, discovery_resolver(defs))
    assert planned.status is Status.PENDING
    assert "worker" in planned.detail
    assert g.participant_roles() == ["api", "worker"]


def test_dead_letter_port_is_connectable_like_any_port() -> None:
    g = graph({"a": "A", "b": "B"}, ("a", "dead_in", "b", "in"))
    defs = {
        "a": definition("a", {"in": "a.IN"}, {}),
        "b": definition("b", {"in": "b.IN"}, {}),
    }
    [planned] = plan(g, discovery_resolver(defs))
    assert planned.binding == Binding("", "a.IN", BindingType.ROUNDROBIN, deadletter="b.IN")
    assert find_queue(defs["a"], Direction.OUT, "DEAD_IN") == "dead-a.IN"
    with pytest.raises(WiringError, match="dead_nope"):
        find_queue(defs["a"], Direction.OUT, "dead_nope")


def test_iips_are_not_edges() -> None:
    g = GraphSpec.from_json(
        {
            "processes": {"a": {"component": "A"}},
            "connections": [{"data": 5, "tgt": {"process": "a", "port": "in"}}],
        }
    )
    assert plan(g, convention_resolver) == []
    assert [(i.data, str(i.tgt)) for i in g.initials] == [(5, "a.in")]


def test_pubsub_pretty_line_matches_the_original() -> None:
    assert pretty_format([Binding("a.OUT", "b.IN")]) == "PUBSUB: \t a.OUT -> b.IN"
