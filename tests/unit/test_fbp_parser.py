"""The .fbp parser's behaviour users rely on, its error messages, the writer and file helpers.

Agreement with the reference parser on many more inputs is checked by
tests/external/test_fbp_differential.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from msgflo.graph import (
    FbpSyntaxError,
    Graph,
    GraphError,
    GraphValidationError,
    Location,
    PortRef,
    check,
    fbp_losses,
    load_graph,
    parse_fbp,
    save_graph,
    to_fbp,
)


def test_chain_with_iip_indexes_and_defaults() -> None:
    graph = parse_fbp("'t' -> IN[0] mux(Mux) OUT[1] -> display(Console)\n")
    assert graph.nodes["mux"].component == "Mux"
    assert [c.tgt for c in graph.connections] == [
        PortRef("mux", "in", 0),
        PortRef("display", "in"),
    ]
    assert graph.edges[0].src == PortRef("mux", "out", 1)
    assert graph.initials[0].data == "t"


def test_port_names_are_lower_cased_unless_case_sensitive() -> None:
    text = "INPORT=a.Data:Input\na(A) Out -> IN b(B)\n"
    lower = parse_fbp(text)
    assert lower.edges[0].src.port == "out" and "input" in lower.inports
    kept = parse_fbp(text, case_sensitive=True)
    assert kept.case_sensitive
    assert kept.edges[0].src.port == "Out" and kept.inports["Input"].port == "Data"


def test_anonymous_nodes_are_numbered_per_component() -> None:
    graph = parse_fbp("(core/Repeat) -> (core/Repeat) -> (my-lib/x)\n")
    assert list(graph.nodes) == ["_core_Repeat_1", "_core_Repeat_2", "_my_lib/x_1"]


def test_node_metadata_routes_and_coordinates() -> None:
    graph = parse_fbp("a(A:main,x=17,y=abc,label=hi)\n")
    assert graph.nodes["a"].metadata == {"routes": "main", "x": 17, "y": None, "label": "hi"}


def test_iip_quoting_and_json() -> None:
    graph = parse_fbp(
        "'it\\'s # here, too' -> IN a(A)\n"
        '{"k": [1, true, null], "1": -1.5e3} -> IN a\n'
        "\ttrue -> IN a\n"
    )
    assert [i.data for i in graph.initials] == [
        "it's # here, too",
        {"1": -1500, "k": [1, True, None]},
        True,
    ]


def test_annotations_become_properties() -> None:
    graph = parse_fbp("# @runtime msgflo\n# @name Main graph\n  # @icon ignored\na(A)\n")
    assert graph.properties == {"environment": {"type": "msgflo"}, "name": "Main graph"}


def test_default_ports_apply_to_later_lines() -> None:
    graph = parse_fbp("(A) -> (B)\nDEFAULT_INPORT=DATA\nDEFAULT_OUTPORT=RESULT\n(C) -> (D)\n")
    assert [(e.src.port, e.tgt.port) for e in graph.edges] == [("out", "in"), ("result", "data")]


def test_syntax_error_points_at_file_line_and_column_with_a_caret() -> None:
    with pytest.raises(FbpSyntaxError) as caught:
        parse_fbp("a(A) -> b(B)\n\na(A) OUT -> \n", file="graph.fbp")
    error = caught.value
    assert (error.file, error.line, error.column) == ("graph.fbp", 3, 13)
    assert str(error) == (
        "graph.fbp:3:13: expected a node, a port or an IIP after '->'\na(A) OUT -> \n            ^"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\ta(A)\n", "tabs are not allowed here"),
        ("a(A:x=1.5)\n", "unexpected '.' in a node declaration"),
        ("INPORT= a.IN:X\n", "no space is allowed after INPORT="),
        ("DEFAULT_INPORT=x-y\n", "'-' is not allowed in a port name"),
        ("a(A) -> b.c\n", "expected a space and a node after the port"),
        ("a(A),,b(B)\n", "unexpected ','"),
        ("'x' -> IN a(A) OUT ->\n", "expected a node, a port or an IIP after '->'"),
        ('{"a" 1} -> IN a(A)\n', "expected ':'"),
    ],
)
def test_syntax_errors_are_said_in_words(text: str, message: str) -> None:
    with pytest.raises(FbpSyntaxError, match=message):
        parse_fbp(text)


def test_references_to_undeclared_nodes_are_rejected_like_the_reference() -> None:
    with pytest.raises(GraphValidationError) as caught:
        parse_fbp("a(A) OUT -> IN b\n", file="g.fbp")
    [problem] = caught.value.problems
    assert problem.location == Location("g.fbp", 1, 1)
    assert "undefined target node 'b'" in str(problem)


def test_check_lists_every_problem_with_its_location() -> None:
    graph = parse_fbp(
        "INPORT=ghost.IN:X\nx() -> IN a(A)\n'data' -> IN b\n", file="g.fbp", validate=False
    )
    problems = [(p.severity, str(p.location), p.message) for p in check(graph)]
    assert problems == [
        ("error", "g.fbp:2:1", "node 'x' has no component"),
        ("error", "g.fbp:1:8", "exported inport 'x' refers to undefined node 'ghost'"),
        ("error", "g.fbp:3:1", "IIP \"data\" is sent to undefined node 'b'"),
    ]


def test_check_warns_about_groups_listing_unknown_nodes() -> None:
    graph = Graph.from_json({"groups": [{"name": "g", "nodes": ["nope"]}]}, file="g.json")
    [problem] = check(graph)
    assert str(problem) == "g.json: warning: group 'g' lists undefined node 'nope'"


def test_written_fbp_parses_back_to_the_same_graph() -> None:
    text = (
        "# @runtime msgflo\nINPORT=a.IN:IN\nOUTPORT=c.OUT:OUT\n"
        "a(A:x=1,route=r) OUT[2] -> IN b(B) OUT -> IN[0] c(C)\n"
        "'it\\'s' -> IN a\n[1, {\"k\": null}] -> IN b\n\tnull -> IN c\n"
    )
    graph = parse_fbp(text)
    written = to_fbp(graph)
    assert written.startswith("# @runtime msgflo\nINPORT=a.IN:IN\n")
    assert parse_fbp(written) == graph


def test_writer_refuses_to_lose_information_unless_asked() -> None:
    graph = parse_fbp("a(A) -> b(B)\n")
    graph.add_group("g", ["a"])
    graph.set_edge_metadata(PortRef("a", "out"), PortRef("b", "in"), {"route": 3})
    assert fbp_losses(graph) == ["metadata of the connection to b", "group 'g'"]
    with pytest.raises(GraphError, match="without losing"):
        to_fbp(graph)
    assert parse_fbp(to_fbp(graph, drop_unsupported=True)).edges == [
        parse_fbp("a(A) -> b(B)\n").edges[0]
    ]


def test_writer_rejects_names_the_language_cannot_spell() -> None:
    graph = Graph()
    graph.add_node("has space", "A")
    with pytest.raises(GraphError, match="node name 'has space'"):
        to_fbp(graph, drop_unsupported=True)


def test_load_and_save_choose_the_format_by_extension(tmp_path: Path) -> None:
    source = tmp_path / "g.fbp"
    source.write_bytes(b"# @name crlf\r\n'a\r\nb' -> IN a(A)\r\n")
    graph = load_graph(source)
    assert graph.initials[0].data == "a\r\nb"
    assert graph.properties == {"name": "crlf"}
    save_graph(graph, tmp_path / "g.json")
    assert load_graph(tmp_path / "g.json") == graph
    save_graph(graph, tmp_path / "copy.fbp")
    assert load_graph(tmp_path / "copy.fbp") == graph
    with pytest.raises(GraphError, match=r"unknown graph format '\.yaml'"):
        load_graph(tmp_path / "g.yaml")
    with pytest.raises(GraphError, match="cannot read"):
        load_graph(tmp_path / "missing.fbp")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(GraphError, match=r"bad\.json:1:2: invalid JSON"):
        load_graph(tmp_path / "bad.json")
