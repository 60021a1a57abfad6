"""Participant classes from Python files: what ``msgflo-python FILE`` runs and what the test
tools run in-process for a graph's Python components."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

from msgflo.errors import LibraryError
from msgflo.participant import Participant


def load_module(path: Path) -> ModuleType:
    name = f"msgflo_participant_{path.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LibraryError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise LibraryError(f"{path}: {type(exc).__name__}: {exc}") from exc
    return module


def find_participant(module: ModuleType, path: Path, class_name: str | None) -> type[Participant]:
    """The participant class defined in the file (not one it merely imports)."""
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Participant)
        and obj is not Participant
        and obj.__module__ == module.__name__
    ]
    if class_name:
        for cls in found:
            if cls.__name__ == class_name:
                return cls
        names = ", ".join(c.__name__ for c in found) or "none"
        raise LibraryError(f"{path}: no participant class {class_name!r} (found: {names})")
    if not found:
        raise LibraryError(f"{path}: defines no msgflo.Participant subclass")
    if len(found) > 1:
        names = ", ".join(c.__name__ for c in found)
        raise LibraryError(f"{path}: several participant classes ({names}); choose with --class")
    return found[0]


def participant_class(path: Path, class_name: str | None = None) -> type[Participant]:
    return find_participant(load_module(path), path, class_name)
