"""Our JSON graph loader against fbp-graph's (npm fbp-graph 0.6.3, `loadJSON`) on a corpus of
graph files written for this project.

`valid/`: both load the file and build the same graph. `invalid/`: both refuse it.
`stricter/`: fbp-graph loads it (silently dropping what it cannot use, or keeping garbage) and
msgflo refuses it in one line, on purpose (docs/deviations.md says why, case by case).

The comparison leaves out two things on purpose: port names compare in lower case when the
graph is not case-sensitive (fbp-graph lower-cases them on load; we keep them as written, as
the original msgflo does, and wiring matches them case-insensitively), and map key order."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from msgflo.graph import Graph, GraphError, PortRef, load_graph

pytestmark = pytest.mark.external

HERE = Path(__file__).parent
CORPUS = HERE / "json_corpus"
NODE_DIR = HERE / "node"
FILES = sorted(CORPUS.glob("*/*.json"))


@pytest.fixture(scope="module")
def reference() -> dict[Path, dict[str, Any]]:
    done = subprocess.run(
        ["node", "load_json_graphs.js"],
        cwd=NODE_DIR,
        input=json.dumps([str(f.resolve()) for f in FILES]),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return dict(zip(FILES, results, strict=True))


def normalised(graph: Graph) -> dict[str, Any]:
    """Our graph in the form load_json_graphs.js prints fbp-graph's."""

    def port(name: str) -> str:
        return name if graph.case_sensitive else name.lower()

    def ends(ref: PortRef) -> list[Any]:
        return [ref.node, port(ref.port), ref.index]

    def exported(kind: str) -> dict[str, Any]:
        ports = graph.inports if kind == "inports" else graph.outports
        return {port(p): [e.node, port(e.port), e.metadata] for p, e in ports.items()}

    return {
        "caseSensitive": graph.case_sensitive,
        "properties": graph.properties,
        "processes": {
            n.name: {"component": n.component, "metadata": n.metadata} for n in graph.nodes.values()
        },
        "edges": [[*ends(e.src), *ends(e.tgt), e.metadata] for e in graph.edges],
        "iips": [
            [i.data, i.tgt.node, port(i.tgt.port), i.tgt.index, i.metadata] for i in graph.initials
        ],
        "inports": exported("inports"),
        "outports": exported("outports"),
        "groups": [[g.name, g.nodes, g.metadata] for g in graph.groups],
    }


def test_reference_is_fbp_graph_0_6_3() -> None:
    package = NODE_DIR / "node_modules" / "fbp-graph" / "package.json"
    assert json.loads(package.read_text())["version"] == "0.6.3"


def test_corpus_covers_each_kind() -> None:
    kinds = [f.parent.name for f in FILES]
    assert (kinds.count("valid"), kinds.count("invalid"), kinds.count("stricter")) >= (25, 10, 15)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_same_result_as_fbp_graph(path: Path, reference: dict[Path, dict[str, Any]]) -> None:
    expected = reference[path]
    kind = path.parent.name
    assert expected["ok"] == (kind != "invalid"), f"corpus file in the wrong folder: {expected}"
    try:
        got = normalised(load_graph(path))
    except GraphError as exc:
        assert kind != "valid", f"fbp-graph loads it, we refuse: {exc}"
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message
        return
    assert kind == "valid", "loaded a file that belongs in valid/"
    assert got == expected["graph"]
