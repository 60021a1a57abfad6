"""``msgflo-script FILE ROLE`` / ``msgflo-script --command SNIPPET ROLE``: a shell participant.

Every message on ``in`` runs the script once with the message on stdin (text as it is, anything
else as JSON).  What the script prints goes to ``out``, decoded as JSON when it is JSON, so
``jq``-style filters pass structured data along; a failing script sends its stderr and exit code
to ``error`` and the message is nacked.  Scripts run one at a time, in arrival order, as asyncio
subprocesses, so heartbeats and acks continue while a slow script works.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import orjson

from msgflo.cli.common import broker_option
from msgflo.participant import Participant
from msgflo.runner import DEFAULT_BROKER, run_participants
from msgflo.transport import Message, encode

SHELL = "/bin/sh"


def script_argv(file: Path | None, command: str | None) -> list[str]:
    """How to run the script: an executable file directly (its ``#!`` line counts), any other
    file and a snippet through ``/bin/sh``."""
    if command is not None:
        return [SHELL, "-c", command]
    assert file is not None
    if os.access(file, os.X_OK):
        return [str(file.resolve())]
    return [SHELL, str(file)]


def stdin_for(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return encode(data)


def output_data(stdout: bytes) -> Any:
    """Output without one trailing newline; JSON when it parses, text otherwise."""
    text = stdout.decode("utf-8", errors="replace")
    text = text.removesuffix("\n").removesuffix("\r")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


class ScriptParticipant(Participant):
    """Runs a shell script per message"""

    inports = {"in": "any"}
    outports = {"out": "any", "error": "object"}

    def __init__(
        self, argv: Sequence[str], role: str, component: str, timeout: float | None = None
    ) -> None:
        super().__init__(role)
        self.argv = list(argv)
        self.timeout = timeout
        self._raw_definition = {**self._raw_definition, "component": component}
        self.set_role(role)
        self._one_at_a_time = asyncio.Lock()

    async def process(self, inport: str, msg: Message) -> None:
        async with self._one_at_a_time:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as exc:
                await self._fail(msg, f"cannot run {self.argv[0]}: {exc.strerror}", None)
                return
            try:
                stdout, stderr = await asyncio.wait_for(
                    proc.communicate(stdin_for(msg.data)), self.timeout
                )
            except TimeoutError:
                # The whole group: a shell's children would keep its output open.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.communicate()
                await self._fail(msg, f"no result within {self.timeout:g} s; killed", None)
                return
        if proc.returncode != 0:
            text = stderr.decode("utf-8", errors="replace").rstrip("\n")
            await self._fail(msg, text or f"exited with code {proc.returncode}", proc.returncode)
            return
        await self.send("out", output_data(stdout))

    async def _fail(self, msg: Message, error: str, code: int | None) -> None:
        await self.send("error", {"error": error, "code": code, "data": msg.data})
        await self.nack(msg)


def parse_arguments(args: Sequence[str], command: str | None) -> tuple[Path | None, str]:
    expected = "ROLE" if command is not None else "FILE ROLE"
    if len(args) != len(expected.split()):
        raise click.UsageError(f"expected {expected}, got {len(args)} argument(s)")
    if command is not None:
        return None, args[0]
    file = Path(args[0])
    if not file.is_file():
        raise click.UsageError(f"{file}: no such script file")
    return file, args[1]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("args", nargs=-1, metavar="[FILE] ROLE")
@click.option("-c", "--command", help="Shell snippet to run instead of FILE.")
@click.option(
    "--component",
    help="Component name to announce [default: FILE's name without extension, "
    "or msgflo/Script for --command].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Kill a run that takes longer than this many seconds (an error, and the message is "
    "nacked) [default: no limit].",
)
@broker_option(DEFAULT_BROKER)
def main(
    args: tuple[str, ...],
    command: str | None,
    component: str | None,
    timeout: float | None,
    broker: str,
) -> None:
    """Run a shell script (FILE or --command) for every message on inport 'in'.

    The message arrives on stdin; stdout goes to outport 'out' (as JSON when it is JSON), and
    a non-zero exit sends stderr and the exit code to 'error'.

    \b
    Examples:
      msgflo-script participants/wordcount.sh counter
      msgflo-script --command 'tr a-z A-Z' upper
    """
    file, role = parse_arguments(args, command)
    name = component or (file.stem if file is not None else "msgflo/Script")
    participant = ScriptParticipant(script_argv(file, command), role, name, timeout)
    run_participants([participant], broker, program="msgflo-script")
