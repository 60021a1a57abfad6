"""Graph files: the extension says which format a file is in."""

from __future__ import annotations

import json
from pathlib import Path

from msgflo.graph.fbp import parse_fbp, to_fbp
from msgflo.graph.model import Graph, GraphError


def load_graph(
    path: str | Path, *, case_sensitive: bool | None = None, validate: bool = True
) -> Graph:
    """Load a `.fbp` or `.json` graph. `case_sensitive` applies to .fbp (default: not) and,
    when given, overrides a JSON file's own `caseSensitive`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".fbp", ".json"):
        raise GraphError(f"{path}: unknown graph format '{suffix}' (expected .fbp or .json)")
    try:
        text = path.read_bytes().decode("utf-8")  # keeps line ends as written
    except OSError as exc:
        raise GraphError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise GraphError(f"{path}: not a UTF-8 text file") from None
    if suffix == ".fbp":
        return parse_fbp(
            text, file=str(path), case_sensitive=bool(case_sensitive), validate=validate
        )
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GraphError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    try:
        graph = Graph.from_json(raw, file=str(path))
    except GraphError as exc:
        raise GraphError(f"{path}: {exc}") from None
    if case_sensitive is not None:
        graph.case_sensitive = case_sensitive
    return graph


def save_graph(graph: Graph, path: str | Path) -> None:
    """Write `graph` in the format the extension names; .fbp refuses to drop information."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".fbp":
        text = to_fbp(graph)
    elif suffix == ".json":
        text = json.dumps(graph.to_json(), indent=2, ensure_ascii=False) + "\n"
    else:
        raise GraphError(f"{path}: unknown graph format '{suffix}' (expected .fbp or .json)")
    path.write_text(text, encoding="utf-8")
