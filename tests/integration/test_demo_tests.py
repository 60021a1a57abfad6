"""The demo's own tests, as a user runs them: `pytest` in the demo folder with the plugin that
comes with msgflo, and `msgflo-spec --in-process` on its fbp-spec suite (no Node)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).parents[2] / "examples" / "demo"
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.slow]


def test_demo_pytest_suite_passes() -> None:
    done = subprocess.run(
        [str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "test_demo.py"],
        cwd=DEMO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_demo_spec_passes_in_process() -> None:
    done = subprocess.run(
        [str(BIN / "msgflo-spec"), "--in-process", "spec", "--junit", "/dev/stdout"],
        cwd=DEMO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed, 0 failed" in done.stdout
    assert 'tests="2" failures="0"' in done.stdout
