"""``msgflo-register-foreign FILE``: the original's single-declaration form, kept for old scripts.

It says it is deprecated (on stderr, as the original does) and otherwise behaves like
``msgflo-register`` with one role, except that ``--forever`` is off by default and ``--role``
may be left out when the declaration names its role.
"""

from __future__ import annotations

from pathlib import Path

import click

from msgflo.cli.register import heartbeat_options, load_all, start

DEPRECATED = (
    "DEPRECATED: Instead use msgflo-register --role A:./filename.yaml "
    "- which also supports multiple roles"
)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--role", help="Role to register as (overrides 'role' in FILE).")
@heartbeat_options(forever=False)
def main(
    file: Path,
    role: str | None,
    broker: str,
    interval: float | None,
    forever: bool,
    connect_timeout: float,
) -> None:
    """Announce the foreign participant declared in FILE (deprecated: use msgflo-register)."""
    click.echo(DEPRECATED, err=True)
    definitions = load_all("msgflo-register-foreign", [(role, file)])
    start("msgflo-register-foreign", broker, definitions, interval, forever, connect_timeout)
