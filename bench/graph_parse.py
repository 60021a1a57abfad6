"""How long parsing a large .fbp graph takes (target: a 5,000-node graph in under a second).

Run: .venv/bin/python -m bench.graph_parse [--nodes N] [--repeat R]
"""

from __future__ import annotations

import argparse
import time

from msgflo.graph import parse_fbp


def make_graph(nodes: int) -> str:
    """A graph that uses every kind of statement: annotations, exports, declarations with
    metadata, chains with indexed ports, and IIPs of both quotings."""
    lines = [
        "# @runtime msgflo",
        "# @name bench",
        "INPORT=n0.IN:IN",
        f"OUTPORT=n{nodes - 1}.OUT:OUT",
    ]
    for i in range(nodes):
        lines.append(f"n{i}(bench/Worker{i % 7}:x={i},y={i * 2},label=node{i})")
    for i in range(1, nodes):
        lines.append(f"n{i - 1} OUT[{i % 3}] -> IN n{i}  # edge {i}")
    for i in range(0, nodes, 10):
        lines.append(f"'config {i}' -> CONFIG n{i}")
        lines.append(f'{{"id": {i}, "tags": ["a", "b"]}} -> OPTIONS n{i}')
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    text = make_graph(args.nodes)
    parse_fbp("a(A)\n")  # build the parser tables outside the measurement
    timings = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        graph = parse_fbp(text)
        timings.append(time.perf_counter() - start)
    best, worst = min(timings), max(timings)
    print(
        f"parse_fbp: {len(graph.nodes)} nodes, {len(graph.connections)} connections, "
        f"{len(text.splitlines())} lines, {len(text) / 1024:.0f} KiB: "
        f"best {best * 1000:.0f} ms, worst {worst * 1000:.0f} ms over {args.repeat} runs"
    )


if __name__ == "__main__":
    main()
