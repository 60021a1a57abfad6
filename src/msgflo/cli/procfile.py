"""``msgflo-procfile GRAPH``: a Heroku/foreman Procfile for a graph, on standard output."""

from __future__ import annotations

from pathlib import Path

import click

from msgflo.cli.common import one_line_errors
from msgflo.deploy.procfile import procfile
from msgflo.deploy.roles import load_network

PROGRAM = "msgflo-procfile"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.command(context_settings=CONTEXT)
@click.argument("graph", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--library",
    "library_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Library configuration. Default: the first of fbp-config.json, package.json, "
    "pyproject.toml with msgflo settings in the current directory.",
)
@click.option(
    "--components",
    multiple=True,
    metavar="DIR",
    help="Directory of component files (repeatable). Default: participants/ and components/.",
)
@click.option("--ignore", multiple=True, metavar="ROLE", help="Leave ROLE out (repeatable).")
@click.option("--include", multiple=True, metavar="LINE", help="Append LINE as it is (repeatable).")
@click.option(
    "--web/--no-web",
    default=True,
    show_default=True,
    help="Require a 'web' process, as Heroku does; --no-web for an app without one.",
)
def main(
    graph: Path,
    library_file: Path | None,
    components: tuple[str, ...],
    ignore: tuple[str, ...],
    include: tuple[str, ...],
    web: bool,
) -> None:
    """Write a Procfile for GRAPH: one `role: command` line per participant, with the
    graph's IIPs filled into the library's commands."""
    with one_line_errors(PROGRAM):
        network = load_network(graph, library_file, components, ignore)
        text = procfile(network.roles, include, require_web=web)
    click.echo(text, nl=False)
