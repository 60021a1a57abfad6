"""Generated graphs survive both file formats unchanged."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from msgflo.graph import Edge, ExportedPort, Graph, Group, Initial, Node, PortRef, parse_fbp, to_fbp

NODE_NAMES = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_-]{0,8}", fullmatch=True)
PORTS = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_.]{0,6}", fullmatch=True)
COMPONENTS = st.from_regex(r"[a-zA-Z0-9_/-]{1,12}", fullmatch=True)
META_WORDS = st.from_regex(r"[a-zA-Z0-9_/]{0,6}", fullmatch=True)
ANNOTATION_KEYS = st.from_regex(r"[a-zA-Z0-9_-]{1,8}", fullmatch=True).filter(
    lambda k: k not in ("runtime", "environment")
)
ANNOTATION_VALUES = st.from_regex(r"[a-zA-Z0-9_.-][a-zA-Z0-9_ .-]{0,10}", fullmatch=True)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(min_value=-(2.0**53), max_value=2.0**53)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
NODE_METADATA = st.dictionaries(
    META_WORDS.filter(lambda k: k not in ("x", "y")), META_WORDS, max_size=3
) | st.fixed_dictionaries({"x": st.integers(0, 5000), "y": st.integers(0, 5000)})
INDEXES = st.none() | st.integers(0, 99)


@st.composite
def graphs(draw: st.DrawFn, *, fbp_only: bool) -> Graph:
    """Graphs that .fbp can hold when `fbp_only`, otherwise anything fbp-graph JSON can."""
    case_sensitive = draw(st.booleans())
    ports = PORTS if case_sensitive else PORTS.map(str.lower)
    any_json = st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=2)
    names = draw(st.lists(NODE_NAMES, min_size=1, max_size=6, unique=True))
    graph = Graph(case_sensitive=case_sensitive)
    for name in names:
        component = draw(COMPONENTS | st.none()) if fbp_only else draw(st.text(max_size=8))
        metadata = draw(NODE_METADATA if fbp_only else any_json)
        graph.nodes[name] = Node(name, component, metadata)
    node_names = st.sampled_from(names) | NODE_NAMES
    refs = st.builds(PortRef, node_names, ports, INDEXES)
    extra = st.just({}) if fbp_only else any_json
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            src, tgt = draw(refs), draw(refs)
            if graph.find_edge(src, tgt) is None:  # a graph holds an edge once, as fbp-graph
                graph.connections.append(Edge(src, tgt, draw(extra)))
        else:
            graph.connections.append(Initial(draw(JSON_VALUES), draw(refs), draw(extra)))
    for exported in (graph.inports, graph.outports):
        for public in draw(st.lists(ports, max_size=3, unique=True)):
            exported[public] = ExportedPort(public, draw(node_names), draw(ports), draw(extra))
    if fbp_only:
        graph.properties = draw(st.dictionaries(ANNOTATION_KEYS, ANNOTATION_VALUES, max_size=3))
        if draw(st.booleans()):
            graph.properties["environment"] = {"type": draw(ANNOTATION_VALUES)}
    else:
        graph.properties = draw(any_json)
        for group in draw(st.lists(st.text(max_size=5), max_size=2, unique=True)):
            members = draw(st.lists(st.sampled_from(names), max_size=3))
            graph.groups.append(Group(group, members, draw(any_json)))
    return graph


@settings(max_examples=200, deadline=None)  # a loaded CI machine must not fail a correct parse
@given(graphs(fbp_only=True))
def test_fbp_write_then_parse_gives_the_same_graph(graph: Graph) -> None:
    text = to_fbp(graph)
    assert parse_fbp(text, case_sensitive=graph.case_sensitive, validate=False) == graph


@settings(max_examples=200, deadline=None)  # a loaded CI machine must not fail a correct parse
@given(graphs(fbp_only=False))
def test_json_write_then_load_gives_the_same_graph(graph: Graph) -> None:
    saved: Any = json.loads(json.dumps(graph.to_json()))
    assert Graph.from_json(saved) == graph
