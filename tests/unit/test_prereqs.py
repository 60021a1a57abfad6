"""``make test`` on a fresh machine: ``.ci/prereqs`` names every missing tool, one per line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PREREQS = Path(__file__).resolve().parents[2] / ".ci" / "prereqs"


def run(path: Path, python: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(PREREQS)],
        env={"PATH": str(path), "PYTHON": python},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_each_missing_tool_is_one_line_naming_what_to_install(tmp_path: Path) -> None:
    done = run(tmp_path, sys.executable)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "missing: Node.js >= 20, which runs the original msgflo as test peer; install nodejs",
        "missing: npm, which installs the Node test peers; install npm",
        "missing: Graphviz 'dot', used by msgflo-graph dot --svg; install graphviz",
        "missing: Mosquitto, the tests' MQTT broker; install mosquitto",
        "missing: RabbitMQ, the tests' AMQP broker; install rabbitmq-server",
    ]


def test_an_old_python_is_named(tmp_path: Path) -> None:
    old = tmp_path / "python3.9"
    old.write_text(
        "#!/bin/sh\n[ \"$2\" = 'import platform; print(platform.python_version())' ] && echo 3.9.18\nexit 1\n"
    )
    old.chmod(0o755)
    lines = run(tmp_path, str(old)).stderr.splitlines()
    assert lines[0] == (
        f"missing: Python >= 3.11 ('{old}' is 3.9.18, set PYTHON=... to use another); "
        "install python3.11 or newer"
    )


def test_nothing_missing_means_success(tmp_path: Path) -> None:
    for tool in ("node", "npm", "dot", "mosquitto", "rabbitmqctl"):
        fake = tmp_path / tool
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
    done = run(tmp_path, sys.executable)
    assert (done.returncode, done.stderr) == (0, "")
