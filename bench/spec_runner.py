"""msgflo-spec vs Node's fbp-spec 0.8.0: the same 50-case suite against the same runtime (target:
msgflo-spec at least 2x faster). Both commands are timed whole, as a user runs them, and each
must report all 50 cases passed, so a run proves the packets went through the network.

Both also run a one-case suite against the same runtime: what a run costs before its cases
(program start, connecting, the fixture's participants starting), the floor under any speed-up;
and ``--help`` alone, the program's own start.

Run: .venv/bin/python -m bench.spec_runner [--cases 50] [--repeat 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.external.fbp_runtime_helpers import (
    BIN,
    NODE,
    VENV_BIN,
    environment,
    free_port,
    make_project,
    runtime_command,
)


def make_suite(cases: int) -> str:
    lines = [
        'name: "bench"',
        "topic: core/Repeat",
        "fixture:",
        "  type: fbp",
        "  data: |",
        "    INPORT=a.IN:IN",
        "    OUTPORT=b.OUT:OUT",
        "    a(core/Repeat) OUT -> IN b(core/Repeat)",
        "cases:",
    ]
    for i in range(cases):
        lines += [
            f"- name: 'case {i}'",
            "  assertion: 'comes back'",
            f"  inputs: {{ in: {{ n: {i}, text: 'x{i}' }} }}",
            f"  expect: {{ out: {{ path: '$.n', equals: {i} }} }}",
        ]
    return "\n".join(lines) + "\n"


def timed(command: list[str], cases: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=NODE, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    passed = done.stdout.count("✓")
    if done.returncode != 0 or passed != cases:
        sys.exit(f"{command[0]}: {passed}/{cases} passed, exit {done.returncode}\n{done.stdout}")
    return seconds


def started(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run([*command, "--help"], cwd=NODE, capture_output=True, check=True, timeout=60)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        port = free_port()
        make_project(project, port)
        suite = project / "suite.yaml"
        suite.write_text(make_suite(args.cases))
        single = project / "single.yaml"
        single.write_text(make_suite(1))
        runtime = subprocess.Popen(
            runtime_command(project, port),
            shell=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environment(),
            text=True,
        )
        try:
            assert runtime.stdout is not None
            runtime.stdout.readline()
            address = f"ws://127.0.0.1:{port}"
            common = ["--address", address, "--command-timeout", "10"]
            tools = {"fbp-spec": BIN / "fbp-spec", "msgflo-spec": VENV_BIN / "msgflo-spec"}
            times: dict[tuple[str, int], list[float]] = {}
            for _ in range(args.repeat):
                for name, tool in tools.items():
                    times.setdefault((name, 0), []).append(started([str(tool)]))
                for path, cases in ((suite, args.cases), (single, 1)):
                    for name, tool in tools.items():
                        times.setdefault((name, cases), []).append(
                            timed([str(tool), *common, str(path)], cases)
                        )
        finally:
            runtime.terminate()
            runtime.wait(timeout=15)
    node, ours = times[("fbp-spec", args.cases)], times[("msgflo-spec", args.cases)]
    result = {
        "scenario": "spec_runner",
        "cases": args.cases,
        "fbp_spec_seconds": node,
        "msgflo_spec_seconds": ours,
        "one_case_fbp_spec_seconds": times[("fbp-spec", 1)],
        "one_case_msgflo_spec_seconds": times[("msgflo-spec", 1)],
        "help_fbp_spec_seconds": times[("fbp-spec", 0)],
        "help_msgflo_spec_seconds": times[("msgflo-spec", 0)],
        "speedup_median": statistics.median(node) / statistics.median(ours),
        "target": 2.0,
    }
    result["met"] = result["speedup_median"] >= result["target"]
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
