"""fbp-protocol 0.9.8's own conformance suite (`fbp-test`, 22 tests) against our runtime.

fbp-test reads fbp-config.json from PROJECT_HOME, starts the runtime with its `command`, waits
for the first line on stdout, and drives it over one WebSocket with the components
`core/Repeat` and `core/Drop` (our small participants, see fbp_runtime_helpers)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.external.fbp_runtime_helpers import BIN, NODE, environment, free_port, make_project

pytestmark = [pytest.mark.external, pytest.mark.slow]


def test_fbp_test_passes_all_22_tests(tmp_path: Path) -> None:
    make_project(tmp_path, free_port())
    env = {**environment(), "PROJECT_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(BIN / "fbp-test")],
        cwd=NODE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = done.stdout + done.stderr
    passing = re.search(r"(\d+) passing", report)
    assert passing is not None, report
    assert "failing" not in report, report
    assert int(passing.group(1)) == 22, report
    assert done.returncode == 0, report
