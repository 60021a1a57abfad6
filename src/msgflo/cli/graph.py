"""msgflo-graph: convert, check and draw FBP graphs (.fbp and fbp-graph JSON)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from msgflo.cli.common import one_line_errors
from msgflo.graph import (
    FbpSyntaxError,
    Graph,
    GraphError,
    JsonFileError,
    KnownComponent,
    Problem,
    check,
    check_components,
    fbp_losses,
    load_graph,
    to_dot,
    to_fbp,
)
from msgflo.library import Library
from msgflo.runtime.components import definition_of
from msgflo.wiring import DEAD_LETTER_PREFIX, VIRTUAL_COMPONENTS

PROGRAM = "msgflo-graph"
F = TypeVar("F", bound=Callable[..., Any])

graph_file = click.argument("file", type=click.Path(dir_okay=False, path_type=Path))


def case_option(command: F) -> F:
    return click.option(
        "--case-sensitive/--no-case-sensitive",
        default=None,
        help="Keep the case of port names in .fbp files (the reference lower-cases them). "
        "For JSON files, overrides the file's caseSensitive.",
    )(command)


def fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


def load(path: Path, case_sensitive: bool | None, validate: bool = True) -> Graph:
    """The graph in ``path``; its errors are told as ``FILE[:LINE:COLUMN]: message``, the
    form editors jump to, rather than prefixed with the program's name."""
    try:
        return load_graph(path, case_sensitive=case_sensitive, validate=validate)
    except GraphError as exc:
        fail(str(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Convert, check and draw FBP graphs written in .fbp or as fbp-graph JSON."""


@main.command()
@graph_file
@click.option(
    "--to",
    "target",
    type=click.Choice(["json", "fbp"]),
    default="json",
    show_default=True,
    help="Output format.",
)
@case_option
def convert(file: Path, target: str, case_sensitive: bool | None) -> None:
    """Print FILE (.fbp or .json) as fbp-graph JSON, shaped as `fbp FILE` prints it, or as .fbp.

    Example: msgflo-graph convert graphs/hello.fbp > hello.json
    """
    graph = load(file, case_sensitive)
    if target == "json":
        click.echo(json.dumps(graph.to_json(), indent=2, ensure_ascii=False))
        return
    try:
        text = to_fbp(graph, drop_unsupported=True)
    except GraphError as exc:
        fail(f"{file}: {exc}")
    for loss in fbp_losses(graph):
        click.echo(f"{file}: warning: .fbp cannot hold the {loss}; left out", err=True)
    click.echo(text, nl=False)


@main.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--library",
    "library_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Library configuration to check components against, as for msgflo. Default: the "
    "first of fbp-config.json, package.json, pyproject.toml in the current directory.",
)
@click.option(
    "--componentdir",
    multiple=True,
    help="Directory of component files (repeatable), as for msgflo. Default: participants/ "
    "and components/ if they exist.",
)
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@case_option
def check_command(
    files: tuple[Path, ...],
    library_file: Path | None,
    componentdir: tuple[str, ...],
    strict: bool,
    case_sensitive: bool | None,
) -> None:
    """Report syntax errors, references to undefined nodes, and components and ports the
    library does not know (with the closest known name) in FILES.

    Components are looked up as msgflo looks them up, in the library it would use; when that
    library has no components at all, components are not checked. Ports are checked for
    components whose definition can be read without running them (Python participants,
    foreign declarations). Problems are printed as FILE:LINE:COLUMN: SEVERITY: MESSAGE. The
    exit code is 1 when any file has an error (or, with --strict, a warning), 0 otherwise.
    """
    with one_line_errors(PROGRAM):
        library = Library.load(library_file, list(componentdir) or None, root=Path.cwd())
    failing = ("error", "warning") if strict else ("error",)
    failed = False
    for path in files:
        try:
            graph = load_graph(path, case_sensitive=case_sensitive, validate=False)
        except FbpSyntaxError as exc:
            where = f"{exc.file}:{exc.line}:{exc.column}"
            lines = str(exc).split("\n", 1)[1]
            click.echo(f"{where}: error: {exc.message}\n{lines}", err=True)
            failed = True
            continue
        except JsonFileError as exc:
            click.echo(f"{exc.location}: error: {exc.message}", err=True)
            failed = True
            continue
        except GraphError as exc:
            message = str(exc).removeprefix(f"{path}: ")
            click.echo(f"{path}: error: {message}", err=True)
            failed = True
            continue
        for problem in problems_of(graph, path, library):
            click.echo(str(problem), err=True)
            failed = failed or problem.severity in failing
    sys.exit(1 if failed else 0)


def problems_of(graph: Graph, path: Path, library: Library) -> list[Problem]:
    """What `check` reports: the file's own rules (a .fbp node needs a component, a JSON node
    may go without, as msgflo runs it), then components and ports against the library."""
    problems = check(graph, components_required=path.suffix.lower() == ".fbp")
    if library.components:
        problems += check_components(graph, lambda name: known(library, name), library.names())
    return problems


def known(library: Library, name: str) -> KnownComponent | None:
    """The library's view of component `name`, with the ports msgflo would wire: those its
    definition lists, plus the dead-letter outport `dead_<inport>` every inport has."""
    if name in VIRTUAL_COMPONENTS:
        return KnownComponent()
    component = library.find(name)
    if component is None:
        return None
    definition = definition_of(component, library)
    inports, outports = (_port_ids(definition.get(kind)) for kind in ("inports", "outports"))
    if inports is None or outports is None:
        return KnownComponent()
    dead = {f"{DEAD_LETTER_PREFIX}{port}" for port in inports}
    return KnownComponent(frozenset(inports), frozenset(outports | dead))


def _port_ids(ports: Any) -> set[str] | None:
    if not isinstance(ports, list):
        return None
    return {p["id"] for p in ports if isinstance(p, dict) and isinstance(p.get("id"), str)}


@main.command()
@graph_file
@click.option(
    "--svg",
    "svg",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Render to this SVG file with Graphviz's `dot` instead of printing DOT.",
)
@case_option
def dot(file: Path, svg: Path | None, case_sensitive: bool | None) -> None:
    """Print FILE as Graphviz DOT, or render it to SVG with --svg."""
    source = to_dot(load(file, case_sensitive, validate=False))
    if svg is None:
        click.echo(source, nl=False)
        return
    program = shutil.which("dot")
    if program is None:
        fail(f"{PROGRAM}: Graphviz's 'dot' program is not installed (apt-get install graphviz)")
    result = subprocess.run(
        [program, "-Tsvg", "-o", str(svg)], input=source, text=True, capture_output=True
    )
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        fail(f"{PROGRAM}: dot failed: {detail[-1] if detail else f'exit code {result.returncode}'}")
