"""``msgflo-spec PATH...``: run fbp-spec suites against an FBP runtime, without Node.

Against a runtime that runs (``--address``), one this command starts (``--command``), or our
own runtime inside this process (``--in-process``). Prints results as fbp-spec does, writes TAP
or JUnit XML on request, and exits 2 when a case fails (as fbp-spec), 1 when the suites or the
runtime cannot be used at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import click

from msgflo.cli.common import one_line_errors
from msgflo.errors import ConnectError
from msgflo.logs import setup_logging
from msgflo.testing.spec import (
    CaseResult,
    FbpClient,
    Suite,
    TextReport,
    junit,
    load_suites,
    run_suites,
    summary,
    tap,
)

PROGRAM = "msgflo-spec"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@contextlib.asynccontextmanager
async def started(command: str | None) -> AsyncIterator[None]:
    """Run ``command`` in a shell (in its own process group) for the block."""
    if not command:
        yield
        return
    try:
        process = await asyncio.create_subprocess_shell(
            command, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
        )
    except OSError as exc:
        raise ConnectError(f"cannot start the runtime ({command}): {exc}") from exc
    try:
        yield
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()


async def run(
    suites: list[Suite],
    address: str,
    secret: str,
    start_timeout: float,
    command_timeout: float,
) -> list[CaseResult]:
    report = TextReport()

    def show(result: CaseResult) -> None:
        click.echo("\n".join(report.lines(result)))

    client = FbpClient(address, secret, command_timeout)
    await client.connect(start_timeout)
    try:
        return await run_suites(client, suites, show)
    finally:
        await client.close()


async def run_in_process(
    suites: list[Suite],
    library_file: Path | None,
    componentdirs: list[str],
    broker: str | None,
    start_timeout: float,
    command_timeout: float,
) -> list[CaseResult]:
    # imported here: the coordinator and the runtime server are only needed in-process, and
    # loading them would slow every other run of the command
    from msgflo.testing.runtime import in_process_runtime, load_library

    library = load_library(library_file, componentdirs)
    async with in_process_runtime(library, broker) as address:
        return await run(suites, address, "", start_timeout, command_timeout)


@click.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--address", default="ws://localhost:3569", show_default=True, help="FBP runtime.")
@click.option("--secret", default="", envvar="MSGFLO_RUNTIME_SECRET", help="Runtime secret.")
@click.option("--command", help="Shell command that starts the runtime under test first.")
@click.option(
    "--start-timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for the runtime to accept a connection.",
)
@click.option(
    "--command-timeout",
    type=float,
    default=3.0,
    show_default=True,
    help="Seconds to wait for the answer to each FBP command.",
)
@click.option(
    "--in-process",
    is_flag=True,
    help="Run our runtime inside this command (with --library/--componentdir/--broker).",
)
@click.option(
    "--library",
    "library_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --in-process: library configuration, as for msgflo.",
)
@click.option("--componentdir", multiple=True, help="With --in-process: component directory.")
@click.option(
    "--broker",
    help="With --in-process: broker URL (default MSGFLO_BROKER, else an embedded one).",
)
@click.option(
    "--tap", "tap_file", type=click.Path(dir_okay=False, path_type=Path), help="Write TAP here."
)
@click.option(
    "--junit",
    "junit_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write JUnit XML here.",
)
def main(
    paths: tuple[Path, ...],
    address: str,
    secret: str,
    command: str | None,
    start_timeout: float,
    command_timeout: float,
    in_process: bool,
    library_file: Path | None,
    componentdir: tuple[str, ...],
    broker: str | None,
    tap_file: Path | None,
    junit_file: Path | None,
) -> None:
    """Run the fbp-spec suites in PATHS (files, or directories of .yaml files)."""
    setup_logging()
    if in_process and command:
        raise click.UsageError("--in-process and --command exclude each other")
    try:
        with one_line_errors(PROGRAM):
            suites = load_suites(paths)
            if in_process:
                work = run_in_process(
                    suites, library_file, list(componentdir), broker, start_timeout, command_timeout
                )
                results = asyncio.run(work)
            else:

                async def against_address() -> list[CaseResult]:
                    async with started(command):
                        return await run(suites, address, secret, start_timeout, command_timeout)

                results = asyncio.run(against_address())
    except KeyboardInterrupt:
        sys.exit(130)
    click.echo(summary(results))
    if tap_file is not None:
        tap_file.write_text(tap(results), encoding="utf-8")
    if junit_file is not None:
        junit_file.write_text(junit(results), encoding="utf-8")
    sys.exit(2 if any(not r.passed for r in results) else 0)
