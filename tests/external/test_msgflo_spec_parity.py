"""msgflo-spec gives the same verdict per case as Node's fbp-spec 0.8.0, run against the same
runtime, on our own suites and on fbp-spec's example suites (passing and failing ones alike)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.external.fbp_runtime_helpers import (
    BIN,
    NODE,
    VENV_BIN,
    environment,
    free_port,
    make_project,
    runtime_command,
)

pytestmark = [pytest.mark.external, pytest.mark.slow]

SPEC = Path(__file__).parents[2] / "spec"
EXAMPLES = NODE / "node_modules" / "fbp-spec" / "examples"

DUMMY = '''import msgflo


class DummyComponent(msgflo.Participant):
    """Sends on what it gets: the component fbp-spec's examples use."""

    component = "core/DummyComponent"
    inports = {"in": "all"}
    outports = {"out": "all"}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        await self.send("out", msg.data)
'''

Verdicts = dict[tuple[str, str], str]


@pytest.fixture(scope="module")
def suites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fbp-spec's examples and ours in one folder. The examples name their no-fixture topic
    `DummyComponent`; our library puts the project's namespace in front, so the copy says
    `core/DummyComponent` (nothing else changes)."""
    folder = tmp_path_factory.mktemp("suites")
    for example in sorted(EXAMPLES.glob("*.yaml")):
        text = example.read_text().replace('"DummyComponent"', '"core/DummyComponent"')
        (folder / f"example-{example.name}").write_text(text)
    shutil.copy(SPEC / "repeat.yaml", folder / "repeat.yaml")
    shutil.copy(SPEC / "failing" / "repeat-wrong.yaml", folder / "repeat-wrong.yaml")
    return folder


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    project = tmp_path_factory.mktemp("project")
    port = free_port()
    make_project(project, port)
    (project / "participants" / "DummyComponent.py").write_text(DUMMY)
    process = subprocess.Popen(
        runtime_command(project, port),
        shell=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment(),
        text=True,
    )
    assert process.stdout is not None
    assert "FBP runtime on ws://" in process.stdout.readline()
    yield f"ws://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=15)


def verdicts(output: str) -> Verdicts:
    """(suite, case) -> "pass", "fail" or "skip" from fbp-spec's console format, which
    msgflo-spec prints too."""
    found: Verdicts = {}
    suite = ""
    lines = output.splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith(" "):
            suite = line
        elif re.match(r"^ {2}\S", line) and number + 1 < len(lines):
            outcome = lines[number + 1]
            if re.match(r"^ {4}\S", outcome):
                status = (
                    "pass" if outcome.endswith("✓") else "skip" if "SKIP:" in outcome else "fail"
                )
                found[(suite, line.strip())] = status
    return found


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=NODE, capture_output=True, text=True, timeout=300)


def test_same_verdict_per_case_as_fbp_spec(address: str, suites: Path) -> None:
    for suite_file in sorted(suites.glob("*.yaml")):
        node = run(
            [
                str(BIN / "fbp-spec"),
                "--address",
                address,
                "--command-timeout",
                "10",
                str(suite_file),
            ]
        )
        ours = run(
            [
                str(VENV_BIN / "msgflo-spec"),
                "--address",
                address,
                "--command-timeout",
                "10",
                str(suite_file),
            ]
        )
        theirs = verdicts(node.stdout)
        assert theirs, (
            f"{suite_file.name}: fbp-spec printed no verdicts: {node.stdout}{node.stderr}"
        )
        assert verdicts(ours.stdout) == theirs, (
            f"{suite_file.name}\n--- fbp-spec\n{node.stdout}\n--- msgflo-spec\n{ours.stdout}"
        )
        assert ours.returncode == node.returncode, suite_file.name


def test_the_examples_include_failing_and_passing_cases(address: str, suites: Path) -> None:
    """The parity above means something: both kinds of verdict are among the cases."""
    ours = run([str(VENV_BIN / "msgflo-spec"), "--address", address, str(suites)])
    found = verdicts(ours.stdout)
    assert list(found.values()).count("pass") >= 15, ours.stdout
    assert list(found.values()).count("fail") >= 15, ours.stdout
    assert ours.returncode == 2
