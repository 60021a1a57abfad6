"""msgflo: distributed Flow-Based Programming over message queues.

The public API is small on purpose: write a :class:`Participant` (or decorate a function with
:func:`component`), start it with :func:`run`, test it with :mod:`msgflo.testing`.
Code written for msgflo-python 0.4 keeps working through :func:`main` and the legacy style of
:class:`Participant`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msgflo import testing
    from msgflo.participant import Participant, component
    from msgflo.transport import Message

__all__ = ["Message", "Participant", "component", "main", "run", "testing"]
__version__ = "0.5.0"

_LAZY = {
    "Participant": "msgflo.participant",
    "component": "msgflo.participant",
    "Message": "msgflo.transport",
}
"""Names loaded on first use: tools that import one submodule (``msgflo-spec``, the graph
tools) should not pay for the participant machinery, nor a participant for the test helpers."""


def __getattr__(name: str) -> Any:
    if name == "testing":
        return import_module("msgflo.testing")
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'msgflo' has no attribute {name!r}")


def run(
    target: type[Participant] | Participant | Sequence[Participant],
    broker: str | None = None,
    done_cb: Callable[[], Any] | None = None,
    iips: Mapping[str, Any] | None = None,
    *,
    role: str | None = None,
) -> None:
    """Run participants until SIGINT/SIGTERM.

    ``run(Upper)`` takes the role and options from the command line; ``run(instances, broker)``
    is msgflo-python's call with participants that already have their roles.
    """
    from msgflo import participant as participants
    from msgflo.runner import instantiate, run_participants

    if isinstance(target, Sequence):
        run_participants(list(target), broker, iips=iips)
    elif role or (isinstance(target, participants.Participant) and target.role):
        run_participants([instantiate(target, role or "")], broker, iips=iips)
    else:
        from msgflo.cli.python import participant_command

        participant_command(target).main(standalone_mode=True)
    if done_cb is not None:
        done_cb()


def main(target: type[Participant], role: str | None = None) -> None:
    """msgflo-python's entry point: ``python file.py ROLE [--iips JSON]``, broker from
    ``MSGFLO_BROKER`` (the original also took the script name as the role; this does not)."""
    run(target, role=role)
