"""fbp-spec 0.8.0 (strict schema validation, as noflo-ui bundles it) runs the YAML specs in
spec/ against our runtime: every case of spec/repeat.yaml passes, and the deliberately wrong
case of spec/failing/ is reported as exactly that one failure."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.external.fbp_runtime_helpers import (
    BIN,
    NODE,
    environment,
    free_port,
    make_project,
    runtime_command,
)

pytestmark = [pytest.mark.external, pytest.mark.slow]

SPEC = Path(__file__).parents[2] / "spec"


@pytest.fixture
def address(tmp_path: Path) -> Iterator[str]:
    """Our runtime started as fbp-spec's `--command` would, up once its ready line is out."""
    port = free_port()
    make_project(tmp_path, port)
    process = subprocess.Popen(
        runtime_command(tmp_path, port),
        shell=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment(),
        text=True,
    )
    assert process.stdout is not None
    ready = process.stdout.readline()
    assert "FBP runtime on ws://127.0.0.1" in ready, ready
    yield f"ws://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=15)


def fbp_spec(address: str, spec: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "fbp-spec"), "--address", address, "--command-timeout", "10", str(spec)],
        cwd=NODE,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_fbp_spec_passes_and_reports_the_wrong_expectation(address: str) -> None:
    passing = fbp_spec(address, SPEC / "repeat.yaml")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert passing.stdout.count("✓") == 4, passing.stdout
    assert "✗" not in passing.stdout

    failing = fbp_spec(address, SPEC / "failing" / "repeat-wrong.yaml")
    assert failing.returncode == 2, failing.stdout + failing.stderr
    assert failing.stdout.count("✓") == 1, failing.stdout
    failures = [line.strip() for line in failing.stdout.splitlines() if "✗" in line]
    assert failures == [
        "is reported as failing, since 1 is not 2: ✗ Error: expected 1 to deeply equal 2"
    ], failing.stdout
