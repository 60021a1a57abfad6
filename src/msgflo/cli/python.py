"""``msgflo-python FILE ROLE``: run the participant class defined in a Python file.

Also builds the command line of ``msgflo.run(Class)`` / ``msgflo.main(Class)``, so a file that
runs itself (``python file.py ROLE``) takes the same options.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from msgflo.cli.common import broker_option, one_line_errors
from msgflo.errors import LibraryError
from msgflo.participant import Participant
from msgflo.participant_file import find_participant, load_module
from msgflo.runner import DEFAULT_BROKER, instantiate, parse_iips, run_participants

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _common_options(func: Callable[..., None]) -> Callable[..., None]:
    func = click.option(
        "--connect-timeout", type=float, default=30.0, show_default=True, help="Seconds."
    )(func)
    func = click.option("-i", "--iips", help="Initial packets as a JSON object {inport: data}.")(
        func
    )
    return broker_option(DEFAULT_BROKER)(func)


def _start(
    target: type[Participant] | Participant,
    role: str,
    broker: str,
    iips: str | None,
    connect_timeout: float,
    program: str,
) -> None:
    initial = parse_iips(iips)
    with one_line_errors(program):  # a port declaration that makes no sense
        participant = instantiate(target, role)
    run_participants(
        [participant],
        broker,
        iips=initial,
        connect_timeout=connect_timeout,
        program=program,
    )


def participant_command(target: type[Participant] | Participant) -> click.Command:
    @click.command(context_settings=CONTEXT)
    @click.argument("role")
    @_common_options
    def command(role: str, broker: str, iips: str | None, connect_timeout: float) -> None:
        """Run this participant under ROLE (its node name in the graph)."""
        _start(target, role, broker, iips, connect_timeout, Path(sys.argv[0]).name)

    return command


@click.command(context_settings=CONTEXT)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("role")
@click.option("--class", "class_name", help="Which class, when FILE defines several.")
@_common_options
def main(
    file: Path,
    role: str,
    class_name: str | None,
    broker: str,
    iips: str | None,
    connect_timeout: float,
) -> None:
    """Run the msgflo participant defined in FILE under ROLE (its node name in the graph)."""
    parse_iips(iips)
    with one_line_errors("msgflo-python"):
        module = load_module(file)
    try:
        cls = find_participant(module, file, class_name)
    except LibraryError as exc:
        raise click.UsageError(str(exc)) from exc
    _start(cls, role, broker, iips, connect_timeout, "msgflo-python")
