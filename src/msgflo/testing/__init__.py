"""Helpers for testing participants and flows: :func:`participant` runs one participant and
drives its ports (:mod:`.probe`); :mod:`.network` runs a whole graph; :mod:`.spec` runs fbp-spec
suites; :mod:`.pytest_plugin` brings them to pytest.

    async with msgflo.testing.participant(Upper) as p:
        await p.send("in", "abc")
        assert await p.receive("out") == "ABC"

The names are loaded on first use, so that ``msgflo-spec`` and participants that never test
do not pay for importing the participant machinery.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msgflo.testing.probe import ParticipantProbe, participant

__all__ = ["ParticipantProbe", "participant"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("msgflo.testing.probe"), name)
    raise AttributeError(f"module 'msgflo.testing' has no attribute {name!r}")
