"""msgflo-graph as a user runs it: output, exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from msgflo.cli.graph import main
from msgflo.cli.msgflo import main as msgflo_main

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
    monkeypatch.setattr(shutil, "which", lambda _name: None)
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


UPPER = """from msgflo import Participant


class Upper(Participant):
    inports = [{"id": "in"}]
    outports = [{"id": "out"}]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory as msgflo finds its library: participants/ in the current directory."""
    (tmp_path / "participants").mkdir()
    (tmp_path / "participants" / "Upper.py").write_text(UPPER)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_json(path: Path, graph: dict[str, object]) -> Path:
    path.write_text(json.dumps(graph))
    return path


def test_check_names_unknown_components_and_ports_with_the_closest_name(project: Path) -> None:
    path = write_json(
        project / "typo.json",
        {
            "processes": {"up": {"component": "Uper"}, "up2": {"component": "Upper"}},
            "connections": [
                {"src": {"process": "up2", "port": "otu"}, "tgt": {"process": "up", "port": "in"}},
                {
                    "src": {"process": "up2", "port": "dead_in"},
                    "tgt": {"process": "up2", "port": "IN"},
                },
            ],
        },
    )
    code, _, err = run("check", str(path))
    assert code == 1
    assert err.splitlines() == [
        f"{path}: warning: node 'up': component 'Uper' is not in the library (did you mean "
        "'Upper'?); msgflo will wait for a participant with role 'up' to announce itself",
        f"{path}: error: node 'up2' (Upper) has no outport 'otu' (did you mean 'out'?)",
    ]


def test_check_takes_the_library_from_options(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "Lower.py").write_text(UPPER.replace("Upper", "Lower"))
    path = write_json(project / "g.json", {"processes": {"a": {"component": "Lower"}}})
    assert run("check", str(path))[0] == 0
    assert "is not in the library" in run("check", str(path))[2]
    assert run("check", "--componentdir", str(other), str(path)) == (0, "", "")


def test_check_strict_fails_on_warnings(project: Path) -> None:
    path = write_json(project / "g.json", {"processes": {"a": {"component": "Uper"}}})
    assert run("check", str(path))[0] == 0
    assert run("check", "--strict", str(path))[0] == 1


def test_check_without_a_library_leaves_components_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_json(tmp_path / "g.json", {"processes": {"a": {"component": "Anything"}}})
    assert run("check", str(path)) == (0, "", "")


def test_json_node_without_component_is_a_warning_as_msgflo_runs_it(tmp_path: Path) -> None:
    path = write_json(tmp_path / "g.json", {"processes": {"ext": {}}})
    code, _, err = run("check", str(path))
    assert code == 0
    assert err == (
        f"{path}: warning: node 'ext' has no component: msgflo starts nothing for it and "
        "waits for a participant with role 'ext' to announce itself\n"
    )
    assert run("convert", str(path))[0] == 0


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("deep.json", nested(100_000), ":1:129: nested more than 128 levels deep"),
        (
            "iip.json",
            '{"processes": {"a": {"component": "A"}}, "connections": [{"data": '
            + nested(600)
            + ', "tgt": {"process": "a", "port": "in"}}]}',
            ":1:192: nested more than 128 levels deep",
        ),
        (
            "int.json",
            '{"properties": {"n": ' + "9" * 5001 + "}}",
            ":1:22: an integer with more than 4300 digits",
        ),
        ("iip.fbp", nested(600) + " -> IN a(A)\n", ":1:1: IIP nested more than 128 levels deep"),
        ("nan.json", '{"properties": {"n": NaN}}', ": invalid JSON: NaN is not JSON"),
    ],
)
def test_files_beyond_limits_are_one_line_in_check_and_convert(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    location, _, what = message.partition(": ")
    code, _, err = run("check", str(path))
    assert (code, err) == (1, f"{path}{location}: error: {what}\n")
    code, out, err = run("convert", str(path))
    assert (code, out, err) == (1, "", f"{path}{message}\n")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("--help", "a node name cannot start with '-'"),
        ("a\x00b", "a node name cannot contain control characters"),
        ("a\nb", "a node name cannot contain control characters"),
        ("", "a node name cannot be empty"),
    ],
)
def test_node_names_that_cannot_be_roles_are_refused(
    tmp_path: Path, name: str, problem: str
) -> None:
    path = write_json(tmp_path / "g.json", {"processes": {name: {"component": "A"}}})
    code, _, err = run("check", str(path))
    assert code == 1
    assert err.startswith(f"{path}: error: process {json.dumps(name)}: {problem}")
    assert err.count("\n") == 1
    assert run("convert", str(path))[0] == 1


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        ({"processes": {"--help": {"component": "A"}}}, "a node name cannot start with '-'"),
        ({"properties": {"deep": json.loads(nested(200))}}, "nested more than 128 levels deep"),
    ],
)
def test_msgflo_refuses_what_check_refuses_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graph: dict[str, object], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_json(tmp_path / "g.json", graph)
    assert run("check", str(path))[0] == 1
    result = CliRunner().invoke(msgflo_main, ["--graph", str(path), "--port", "0"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr
