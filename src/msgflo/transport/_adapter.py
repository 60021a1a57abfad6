"""What the fast-path adapters (:mod:`._paho`, :mod:`._aiormq`) check before they run."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

Range = tuple[tuple[int, int], tuple[int, int]]
"""Lowest tested (major, minor) and the first untested one."""


def untested(tested: dict[str, Range]) -> str | None:
    """Why the installed libraries are not the ones an adapter was checked against, or None."""
    for name, (low, high) in tested.items():
        try:
            text = version(name)
            major, minor = (int(part) for part in [*text.split(".")[:2], "0"][:2])
        except (ValueError, PackageNotFoundError):
            return f"cannot tell the version of {name}"
        if not low <= (major, minor) < high:
            return f"{name} {text} is not a tested version"
    return None


def missing(obj: object, names: tuple[str, ...], prefix: str = "") -> list[str]:
    """The attributes of ``names`` that ``obj`` lacks, for a one-line reason."""
    return [f"{prefix}{name}" for name in names if not hasattr(obj, name)]
