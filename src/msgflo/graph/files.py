"""Graph files: the extension says which format a file is in."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from msgflo.graph.check import check
from msgflo.graph.fbp import GraphValidationError, parse_fbp, to_fbp
from msgflo.graph.model import Graph, GraphError
from msgflo.graph.parts import Location


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
        raise GraphError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise GraphError(f"{path}: not a UTF-8 text file") from exc
    if suffix == ".fbp":
        graph = parse_fbp(
            text, file=str(path), case_sensitive=bool(case_sensitive), validate=validate
        )
        for initial in graph.initials:
            if _nesting(initial.data) > MAX_NESTING:
                where = initial.location or Location(str(path))
                raise JsonFileError(where, f"IIP nested more than {MAX_NESTING} levels deep")
        return graph
    raw = read_json(text, str(path))
    try:
        graph = Graph.from_json(raw, file=str(path))
    except GraphError as exc:
        raise GraphError(f"{path}: {exc}") from exc
    if case_sensitive is not None:
        graph.case_sensitive = case_sensitive
    if validate:
        errors = [p for p in check(graph, components_required=False) if p.severity == "error"]
        if errors:
            raise GraphValidationError(errors)
    return graph


class JsonFileError(GraphError):
    """A JSON graph file that cannot be read, with the place where reading stopped."""

    def __init__(self, location: Location, message: str) -> None:
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}")


MAX_NESTING = 128
"""How deep a JSON graph may nest arrays and objects. Every layer that handles a graph (copies,
the FBP protocol, the JSON a message body is encoded to, which stops at 255) must cope with
what a file holds; real graphs nest a few levels plus their IIPs' data."""

MAX_INTEGER_DIGITS = 4300
"""Python's own limit on converting digits to an integer (sys.get_int_max_str_digits)."""

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*+"|[\[\]{}]|-?[0-9][0-9.eE+-]*+')


def read_json(text: str, file: str) -> Any:
    """Parse JSON text, saying in one line (with its place) what is too deep or too long for
    the rest of msgflo, or what is not JSON (Python would also take NaN and Infinity)."""
    try:
        raw = json.loads(text, parse_constant=_not_json)
        failure = None
    except json.JSONDecodeError as exc:
        where = Location(file, exc.lineno, exc.colno)
        raise JsonFileError(where, f"invalid JSON: {exc.msg}") from exc
    except (RecursionError, ValueError) as exc:
        raw, failure = None, exc
    problem = _limits_problem(text)
    if problem is not None:
        offset, message = problem
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise JsonFileError(Location(file, line, column), message) from failure
    if failure is not None:
        raise JsonFileError(Location(file), f"invalid JSON: {failure}") from failure
    return raw


def _nesting(value: Any) -> int:
    """How deep arrays and objects nest in `value`, found without recursing."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is not None:
            deepest = max(deepest, depth)
            if depth <= MAX_NESTING:
                stack.extend((child, depth + 1) for child in children)
    return deepest


def _not_json(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")


def _limits_problem(text: str) -> tuple[int, str] | None:
    """Where valid JSON first goes beyond :data:`MAX_NESTING` or :data:`MAX_INTEGER_DIGITS`;
    a scan of the tokens, since recursing into the parsed value is what must be avoided."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_NESTING:
                return match.start(), f"nested more than {MAX_NESTING} levels deep"
        elif token in ("]", "}"):
            depth -= 1
        elif len(digits := token.lstrip("-")) > MAX_INTEGER_DIGITS and digits.isdigit():
            return match.start(), f"an integer with more than {MAX_INTEGER_DIGITS} digits"
    return None


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
