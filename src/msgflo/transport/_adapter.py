"""What the fast-path adapters (:mod:`._paho`, :mod:`._aiormq`) check before they run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

log = logging.getLogger("msgflo.transport")

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


_OFF = frozenset({"0", "false", "no", "off"})


class FastPath:
    """Whether a client runs its fast path: on unless the URL says ``?fastpath=0``, and off for
    the client's life once the adapter's check, run on the first connection, finds a reason."""

    def __init__(self, options: dict[str, str], what: str) -> None:
        self.on = options.get("fastpath", "1").lower() not in _OFF
        self._what = what
        self._checked = False

    def check(self, unavailable: Callable[[], str | None]) -> bool:
        if self.on and not self._checked:
            self._checked = True
            reason = unavailable()
            if reason is not None:
                log.warning("%s fast path off (%s): using the public API", self._what, reason)
                self.on = False
        return self.on
