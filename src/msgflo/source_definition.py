"""A participant's definition read from its Python source, without running it.

FBP clients list the components a runtime can start, with their ports, before any participant
of them has run; importing a user's file to find out would run its code inside the
coordinator.  The three ways of writing a participant keep their definition in literals, so
the syntax tree is enough: class attributes (modern style), the definition dict handed to
``Participant.__init__`` (msgflo-python style), and the keywords of ``@msgflo.component``.
Anything that is not a literal is left out; a file that does not parse gives nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from msgflo.definition import normalize_definition

FIELDS = ("component", "label", "icon", "inports", "outports")


def python_definition(path: Path) -> dict[str, Any]:
    """The definition of the first participant in ``path`` (ports with ``id`` and ``type``),
    or ``{}`` when none can be read."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return {}
    for node in tree.body:
        found = _from_class(node) if isinstance(node, ast.ClassDef) else _from_function(node)
        if found is not None:
            found.setdefault("component", path.stem)
            definition = normalize_definition(found, "role")
            for kind in ("inports", "outports"):
                definition[kind] = [{"id": p["id"], "type": p["type"]} for p in definition[kind]]
            return {k: definition[k] for k in FIELDS}
    return {}


def _literal(node: ast.AST | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _is_participant_base(base: ast.expr) -> bool:
    name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
    return name == "Participant"


def _from_class(node: ast.ClassDef) -> dict[str, Any] | None:
    if not any(_is_participant_base(base) for base in node.bases):
        return None
    found: dict[str, Any] = {}
    for statement in node.body:
        targets: list[ast.expr] = []
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        for target in targets:
            if isinstance(target, ast.Name) and target.id in FIELDS:
                literal = _literal(value)
                if literal is not None:
                    found[target.id] = literal
        if isinstance(statement, ast.FunctionDef) and statement.name == "__init__":
            legacy = _legacy_dict(statement)
            if legacy is not None:
                return legacy
    docstring = ast.get_docstring(node)
    if "label" not in found and docstring:
        found["label"] = docstring.split("\n")[0]
    return found


def _legacy_dict(init: ast.FunctionDef) -> dict[str, Any] | None:
    """msgflo-python style: a dict literal with a ``component`` key inside ``__init__``."""
    for node in ast.walk(init):
        if isinstance(node, ast.Dict):
            keys = [_literal(k) for k in node.keys]
            if "component" in keys:
                literal = _literal(node)
                if isinstance(literal, dict):
                    return {k: v for k, v in literal.items() if k in FIELDS}
    return None


def _from_function(node: ast.stmt) -> dict[str, Any] | None:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    for decorator in node.decorator_list:
        if not isinstance(decorator, ast.Call):
            continue
        func = decorator.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name != "component":
            continue
        keywords = {k.arg: _literal(k.value) for k in decorator.keywords if k.arg}
        found = {
            "component": keywords.get("name") or node.name,
            "label": keywords.get("label") or (ast.get_docstring(node) or "").split("\n")[0],
        }
        for key in ("icon", "inports", "outports"):
            if keywords.get(key) is not None:
                found[key] = keywords[key]
        return found
    return None
