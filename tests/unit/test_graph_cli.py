"""msgflo-graph as a user runs it: output, exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from msgflo.cli import graph as cli
from msgflo.cli.graph import main

GRAPH = (
    "# @runtime msgflo\nINPORT=up.IN:TEXT\n'hi' -> IN up(demo/Upper) OUT -> IN show(demo/Print)\n"
)


@pytest.fixture
def graph_file(tmp_path: Path) -> Path:
    path = tmp_path / "demo.fbp"
    path.write_text(GRAPH)
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout, result.stderr


def test_convert_prints_fbp_graph_json(graph_file: Path) -> None:
    code, out, err = run("convert", str(graph_file))
    assert code == 0 and err == ""
    printed = json.loads(out)
    assert list(printed) == [
        "inports",
        "outports",
        "groups",
        "processes",
        "connections",
        "properties",
        "caseSensitive",
    ]
    assert printed["inports"] == {"text": {"process": "up", "port": "in"}}
    assert printed["connections"][0] == {"data": "hi", "tgt": {"process": "up", "port": "in"}}
    assert out.startswith('{\n  "inports": {\n    "text": {')


def test_convert_case_sensitive_keeps_port_names(graph_file: Path) -> None:
    code, out, _ = run("convert", "--case-sensitive", str(graph_file))
    assert code == 0
    assert json.loads(out)["inports"] == {"TEXT": {"process": "up", "port": "IN"}}


def test_convert_to_fbp_and_back_from_json(graph_file: Path, tmp_path: Path) -> None:
    code, out, _ = run("convert", str(graph_file))
    as_json = tmp_path / "demo.json"
    as_json.write_text(out)
    code, fbp_text, err = run("convert", "--to", "fbp", str(as_json))
    assert code == 0 and err == ""
    assert fbp_text.startswith("# @runtime msgflo\nINPORT=up.IN:TEXT\n")
    again = tmp_path / "again.fbp"
    again.write_text(fbp_text)
    assert json.loads(run("convert", str(again))[1]) == json.loads(out)


def test_convert_to_fbp_warns_about_what_it_leaves_out(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text(
        json.dumps(
            {
                "processes": {"a": {"component": "A"}},
                "groups": [{"name": "box", "nodes": ["a"]}],
            }
        )
    )
    code, out, err = run("convert", "--to", "fbp", str(path))
    assert code == 0 and out == "a(A)\n"
    assert err == f"{path}: warning: .fbp cannot hold the group 'box'; left out\n"


def test_convert_reports_a_syntax_error_with_a_caret(tmp_path: Path) -> None:
    path = tmp_path / "bad.fbp"
    path.write_text("a(A) -> b(B)\na(A) OUT -> \n")
    code, out, err = run("convert", str(path))
    assert code == 1 and out == ""
    assert err == (
        f"{path}:2:13: expected a node, a port or an IIP after '->'\na(A) OUT -> \n"
        + " " * 12
        + "^\n"
    )


def test_check_reports_problems_and_fails_only_on_errors(tmp_path: Path, graph_file: Path) -> None:
    broken = tmp_path / "broken.fbp"
    broken.write_text("a(A) -> IN ghost\n")
    grouped = tmp_path / "grouped.json"
    grouped.write_text(json.dumps({"groups": [{"name": "g", "nodes": ["x"]}]}))
    assert run("check", str(graph_file)) == (0, "", "")
    code, _, err = run("check", str(grouped))
    assert code == 0 and err == f"{grouped}: warning: group 'g' lists undefined node 'x'\n"
    code, _, err = run("check", str(graph_file), str(broken), str(tmp_path / "none.fbp"))
    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith(f"{broken}:1:1: error: edge a.out -> ghost.in has an undefined")
    assert lines[1] == f"{tmp_path / 'none.fbp'}: error: cannot read: No such file or directory"


def test_check_prints_syntax_errors_in_the_same_format(tmp_path: Path) -> None:
    path = tmp_path / "tab.fbp"
    path.write_text("a(A)\n\tb(B)\n")
    code, _, err = run("check", str(path))
    assert code == 1
    assert err == f"{path}:2:1: error: tabs are not allowed here\n\tb(B)\n^\n"


def test_dot_prints_graphviz_source(graph_file: Path) -> None:
    code, out, _ = run("dot", str(graph_file))
    assert code == 0
    assert out.startswith('digraph "graph" {')
    assert '"up" -> "show" [label="out → in"];' in out
    assert '"up" [label="up\\ndemo/Upper"];' in out


def test_dot_svg_renders_with_graphviz(graph_file: Path, tmp_path: Path) -> None:
    assert shutil.which("dot"), "Graphviz is needed for this test (apt-get install graphviz)"
    svg = tmp_path / "demo.svg"
    code, out, err = run("dot", "--svg", str(svg), str(graph_file))
    assert (code, out, err) == (0, "", "")
    assert "<svg" in svg.read_text()


def test_dot_svg_without_graphviz_is_a_one_line_error(
    graph_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.shutil, "which", lambda _name: None)
    code, _, err = run("dot", "--svg", str(tmp_path / "x.svg"), str(graph_file))
    assert code == 1
    assert (
        err
        == "msgflo-graph: Graphviz's 'dot' program is not installed (apt-get install graphviz)\n"
    )


@pytest.mark.parametrize("args", [[], ["convert"], ["check"], ["dot"]])
def test_every_command_has_help(args: list[str]) -> None:
    code, out, _ = run(*args, "--help")
    assert code == 0 and "Usage:" in out


def test_unknown_extension_is_a_one_line_error(tmp_path: Path) -> None:
    code, _, err = run("convert", str(tmp_path / "g.txt"))
    assert code == 1
    assert err == f"{tmp_path / 'g.txt'}: unknown graph format '.txt' (expected .fbp or .json)\n"
