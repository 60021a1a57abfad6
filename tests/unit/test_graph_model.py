"""The graph model's editing operations, events and fbp-graph JSON."""

from __future__ import annotations

import pytest

from msgflo.graph import Edge, Graph, GraphError, GraphEvent, Initial, Node, PortRef


def pipeline() -> Graph:
    graph = Graph()
    graph.add_node("a", "A")
    graph.add_node("b", "B", {"x": 1})
    graph.add_node("c", "C")
    graph.add_edge(PortRef("a", "out"), PortRef("b", "in"))
    graph.add_edge(PortRef("b", "out"), PortRef("c", "in", 0))
    graph.add_initial("hello", PortRef("a", "in"))
    graph.add_export("inport", "input", "a", "in")
    graph.add_export("outport", "output", "c", "out")
    graph.add_group("g", ["a", "b"])
    return graph


def test_remove_node_removes_its_edges_iips_exports_and_group_membership() -> None:
    graph = pipeline()
    graph.remove_node("a")
    assert list(graph.nodes) == ["b", "c"]
    assert graph.connections == [Edge(PortRef("b", "out"), PortRef("c", "in", 0))]
    assert graph.inports == {}
    assert graph.groups[0].nodes == ["b"]
    graph.remove_node("b")
    assert graph.groups == []


def test_rename_node_updates_edges_iips_exports_groups_and_keeps_order() -> None:
    graph = pipeline()
    graph.rename_node("a", "first")
    assert list(graph.nodes) == ["first", "b", "c"]
    assert graph.nodes["first"].name == "first"
    assert graph.edges[0].src == PortRef("first", "out")
    assert graph.initials[0].tgt == PortRef("first", "in")
    assert graph.inports["input"].node == "first"
    assert graph.groups[0].nodes == ["first", "b"]


def test_operations_on_missing_things_raise_graph_error() -> None:
    graph = pipeline()
    with pytest.raises(GraphError, match="no node named 'nope'"):
        graph.remove_node("nope")
    with pytest.raises(GraphError, match="already exists"):
        graph.rename_node("a", "b")
    with pytest.raises(GraphError, match="no node named 'x'"):
        graph.add_edge(PortRef("x", "out"), PortRef("a", "in"))
    with pytest.raises(GraphError, match="already exists"):
        graph.add_edge(PortRef("a", "out"), PortRef("b", "in"))
    with pytest.raises(GraphError, match="no edge"):
        graph.remove_edge(PortRef("c", "out"), PortRef("a", "in"))
    with pytest.raises(GraphError, match="no IIP"):
        graph.remove_initial(PortRef("b", "in"))
    with pytest.raises(GraphError, match="no exported inport"):
        graph.remove_export("inport", "nope")
    with pytest.raises(GraphError, match="no group"):
        graph.rename_group("nope", "x")
    with pytest.raises(GraphError, match="no node named 'zz'"):
        graph.add_initial(1, PortRef("zz", "in"))


def test_metadata_changes_merge_and_none_deletes() -> None:
    graph = pipeline()
    graph.set_node_metadata("b", {"y": 2, "x": None, "label": "B"})
    assert graph.nodes["b"].metadata == {"y": 2, "label": "B"}
    src, tgt = PortRef("a", "out"), PortRef("b", "in")
    graph.set_edge_metadata(src, tgt, {"route": 5})
    graph.set_edge_metadata(src, tgt, {"secure": True, "route": None})
    assert graph.edges[0].metadata == {"secure": True}
    graph.set_group_metadata("g", {"description": "pair"})
    assert graph.groups[0].metadata == {"description": "pair"}
    graph.set_export_metadata("inport", "input", {"x": 3})
    assert graph.inports["input"].metadata == {"x": 3}
    graph.set_properties({"name": "main"})
    assert graph.name == "main"


def test_edges_iips_exports_and_groups_can_be_removed_and_renamed() -> None:
    graph = pipeline()
    graph.remove_edge(PortRef("a", "out"), PortRef("b", "in"))
    assert len(graph.edges) == 1
    removed = graph.remove_initial(PortRef("a", "in"))
    assert removed == [Initial("hello", PortRef("a", "in"))]
    graph.add_export("inport", "second", "b", "in")
    graph.rename_export("inport", "input", "renamed")
    assert list(graph.inports) == ["renamed", "second"]
    assert graph.inports["renamed"].public == "renamed"
    graph.remove_export("outport", "output")
    assert graph.outports == {}
    graph.rename_group("g", "h")
    assert graph.group("h").nodes == ["a", "b"]
    graph.remove_group("h")
    assert graph.groups == []


def test_listeners_hear_what_changed_until_they_unsubscribe() -> None:
    graph = pipeline()
    events: list[GraphEvent] = []
    unsubscribe = graph.subscribe(events.append)
    graph.rename_node("c", "sink")
    graph.remove_node("a")
    kinds = [e.kind for e in events]
    assert kinds[0] == "rename_node" and events[0].old == "c"
    assert events[0].subject.name == "sink"
    assert {"remove_edge", "remove_initial", "remove_inport", "remove_node"} <= set(kinds)
    assert kinds[-1] == "remove_node"
    unsubscribe()
    graph.add_node("z", "Z")
    assert events[-1].kind == "remove_node"


def test_json_round_trip_keeps_everything() -> None:
    graph = pipeline()
    graph.set_properties({"name": "main", "environment": {"type": "msgflo"}})
    graph.set_edge_metadata(PortRef("a", "out"), PortRef("b", "in"), {"route": 1})
    raw = graph.to_json()
    assert list(raw) == [
        "inports",
        "outports",
        "groups",
        "processes",
        "connections",
        "properties",
        "caseSensitive",
    ]
    assert raw["connections"][1] == {
        "src": {"process": "b", "port": "out"},
        "tgt": {"process": "c", "port": "in", "index": 0},
    }
    assert Graph.from_json(raw) == graph


def test_from_json_accepts_what_fbp_graph_accepts() -> None:
    graph = Graph.from_json(
        {
            "properties": {"environment": {"runtime": "msgflo"}},
            "processes": {"a": {"component": "A"}},
            "connections": [{"data": None, "tgt": {"process": "a", "port": "in"}}],
        }
    )
    assert graph.properties == {"environment": {"type": "msgflo"}}
    assert graph.initials[0].data is None
    assert graph.inports == {} and graph.groups == []
    assert Graph.from_json({}).to_json()["processes"] == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"processes": "a"}, "'processes' must be an object"),
        ({"connections": [{"tgt": {"process": "a", "port": "in"}}]}, "needs 'src' or 'data'"),
        (
            {"connections": [{"data": 1, "tgt": {"process": "a", "port": "in", "index": "0"}}]},
            "'index' must be an integer",
        ),
        ({"processes": {"a": {"component": 3}}}, "'component' must be a string"),
        ({"groups": [{"nodes": []}]}, "expected an object with a 'name'"),
    ],
)
def test_from_json_rejects_malformed_graphs(raw: dict[str, object], message: str) -> None:
    with pytest.raises(GraphError, match=message):
        Graph.from_json(raw)


def test_from_json_reads_the_shapes_fbp_graph_reads() -> None:
    graph = Graph.from_json(
        {
            "properties": None,
            "processes": {"a": {"component": "A", "metadata": None}, "b": {"metadata": False}},
            "connections": [
                {"src": {"process": "a", "port": "out"}, "tgt": {"process": "b", "port": "in"}},
                {"src": {"process": "a", "port": "out"}, "tgt": {"process": "b", "port": "in"}},
                {
                    "data": None,
                    "src": {"process": "b", "port": "x"},
                    "tgt": {"process": "a", "port": "in"},
                },
            ],
            "inports": [],
            "outports": {"gone": None, "o": {"process": "b", "port": "out", "metadata": 0}},
            "groups": False,
        }
    )
    assert graph.nodes["b"] == Node("b", None, {})
    assert len(graph.edges) == 1
    assert graph.initials == [Initial(None, PortRef("a", "in"))]
    assert graph.inports == {} and list(graph.outports) == ["o"] and graph.groups == []
    listed = Graph.from_json(
        {"processes": [{"component": "A"}], "inports": [{"process": "0", "port": "in"}]}
    )
    assert list(listed.nodes) == ["0"] and listed.inports["0"].node == "0"


@pytest.mark.parametrize("name", ["-x", "--help", "a\x00", "a\x1bb", "a\u2028b", ""])
def test_names_that_cannot_be_roles_are_refused_everywhere(name: str) -> None:
    with pytest.raises(GraphError, match="a node name cannot"):
        Graph.from_json({"processes": {name: {"component": "A"}}})
    graph = Graph()
    with pytest.raises(GraphError, match="a node name cannot"):
        graph.add_node(name, "A")
    graph.add_node("ok", "A")
    with pytest.raises(GraphError, match="a node name cannot"):
        graph.rename_node("ok", name)
    assert list(graph.nodes) == ["ok"]
