"""msgflo-procfile: the original's scenarios, IIPs in commands, and the `web` check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from msgflo.cli.procfile import main

FIXTURES = Path(__file__).parent / "fixtures" / "deploy" / "procfile"


@pytest.fixture(autouse=True)
def in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_ignored_roles_are_left_out_and_includes_appended() -> None:
    code, out, _ = run(
        "imaging.fbp",
        "--library=imaging.json",
        "--ignore=api",
        "--ignore",
        "jobs",
        "--ignore",
        "drop",
        "--include",
        "web: node index.js",
    )
    assert code == 0
    assert out == "worker: node render.js --name worker\nweb: node index.js\n"


def test_iips_fill_in_the_command_single_quoted_in_node_order() -> None:
    code, out, _ = run(
        "iips.fbp", "--library", "noflo.json", "--ignore", "web", "--include", "web: node index.js"
    )
    assert code == 0
    worker = 'node ./node_modules/.bin/noflo-runtime-msgflo --name {} --graph api/Worker --cache true --iips \'{{"port":"{}"}}\' --prefetch 1'
    assert out.splitlines() == [
        "fast: " + worker.format("fast", "8082"),
        "slow: " + worker.format("slow", "8081"),
        "web: node index.js",
    ]


def test_a_web_role_from_the_graph_satisfies_heroku() -> None:
    code, out, _ = run("iips.fbp", "--library", "noflo.json")
    assert code == 0
    assert out.endswith("web: node index.js\n\n")  # no includes: the original's empty last line


def test_missing_component_names_component_and_role() -> None:
    code, out, err = run("imaging.fbp", "--library", "imaging.json", "--include", "web: x")
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "imaging/HttpApi" in err and "'api'" in err


def test_namespace_fallback_finds_directory_components() -> None:
    code, out, _ = run("handlers.fbp", "--library=handlers.json", "--components=comps", "--no-web")
    assert code == 0
    assert out == "foo: msgflo-nodejs --name foo comps/ProduceFoo.js\n\n"


def test_no_web_process_is_an_error_unless_told() -> None:
    code, out, err = run("handlers.fbp", "--library=handlers.json", "--components=comps")
    assert code == 1 and out == ""
    assert err.startswith("msgflo-procfile: no 'web' process") and err.count("\n") == 1


def test_virtual_nodes_are_never_processes(tmp_path: Path) -> None:
    graph = tmp_path / "rr.fbp"
    graph.write_text(
        "web(api/Web) OUT -> IN rr(msgflo/RoundRobin)\nrr OUT -> IN fast(api/Worker)\n"
    )
    code, out, _ = run(str(graph), "--library", "noflo.json")
    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines() if line] == ["web", "fast"]


def test_unknown_ignored_role_is_an_error() -> None:
    code, _, err = run("iips.fbp", "--library", "noflo.json", "--ignore", "fats")
    assert code == 1
    assert "--ignore fats: no such role" in err


def test_installed_command_runs() -> None:
    script = Path(sys.executable).parent / "msgflo-procfile"
    result = subprocess.run(
        [str(script), "iips.fbp", "--library", "noflo.json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("fast: node ")
