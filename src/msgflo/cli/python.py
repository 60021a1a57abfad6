"""``msgflo-python FILE ROLE``: run the participant class defined in a Python file.

Also builds the command line of ``msgflo.run(Class)`` / ``msgflo.main(Class)``, so a file that
runs itself (``python file.py ROLE``) takes the same options.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import click

from msgflo.cli.common import broker_option
from msgflo.participant import Participant
from msgflo.runner import DEFAULT_BROKER, instantiate, parse_iips, run_participants

CONTEXT = {"help_option_names": ["-h", "--help"]}


def load_module(path: Path) -> ModuleType:
    name = f"msgflo_participant_{path.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise click.UsageError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise click.ClickException(f"{path}: {type(exc).__name__}: {exc}") from None
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
        raise click.UsageError(f"{path}: no participant class {class_name!r} (found: {names})")
    if not found:
        raise click.UsageError(f"{path}: defines no msgflo.Participant subclass")
    if len(found) > 1:
        names = ", ".join(c.__name__ for c in found)
        raise click.UsageError(
            f"{path}: several participant classes ({names}); choose with --class"
        )
    return found[0]


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
    run_participants(
        [instantiate(target, role)],
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
    cls = find_participant(load_module(file), file, class_name)
    _start(cls, role, broker, iips, connect_timeout, "msgflo-python")
