"""``msgflo-send-message``: put one message on a queue (the original's tool, working).

Fixed against the original: the installed command runs (it could not find its own module), the
message is confirmed by the broker before the command exits, and on AMQP a message that no queue
takes (the queue does not exist, its name is in the wrong case, nothing is bound to the exchange)
is reported, with exit code 1, instead of being dropped in silence.  An MQTT broker cannot tell.
"""

from __future__ import annotations

import sys
from typing import TextIO

import click
import orjson

from msgflo.cli.common import broker_option, run_command
from msgflo.transport import QueueKind, get_client


async def send(
    broker: str, queue: str, bodies: list[bytes], kind: QueueKind, timeout: float
) -> int:
    client = get_client(broker, connect_timeout=timeout)
    await client.connect()
    try:
        for body in bodies:
            await client.send_checked(kind, queue, body)
    finally:
        await client.disconnect()
    return 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@broker_option(announce=True)
@click.option("--queue", "-q", help="Queue (or MQTT topic) to send to.")
@click.option("--json", "payload", help="Payload, valid JSON. '-' reads it from stdin.")
@click.option(
    "--lines",
    "lines_file",
    type=click.File("r", encoding="utf-8"),
    help="Send each line of this file (JSON Lines; '-' for stdin) as one message, in order.",
)
@click.option(
    "--outqueue",
    is_flag=True,
    help="Publish through the queue's exchange (as a participant's outport does) "
    "instead of straight into the queue.",
)
@click.option("--connect-timeout", type=float, default=30.0, show_default=True, help="Seconds.")
def main(
    broker: str,
    queue: str | None,
    payload: str | None,
    lines_file: TextIO | None,
    outqueue: bool,
    connect_timeout: float,
) -> None:
    """Send one JSON message (or one per line of a file) to a queue.

    On AMQP a message that no queue takes (a missing or misspelt queue) is an error, exit
    code 1; MQTT cannot tell.
    """
    if not queue:
        raise click.UsageError("Missing queue to send to (--queue)")
    if (payload is None) == (lines_file is None):
        raise click.UsageError("Give the message payload: --json, or --lines FILE (one of them)")
    if lines_file is not None:
        name = lines_file.name
        numbered = [(f"{name}:{n}", line) for n, line in enumerate(lines_file, 1) if line.strip()]
    else:
        assert payload is not None
        numbered = [("--json", sys.stdin.read() if payload == "-" else payload)]
    bodies = [checked(where, text).encode("utf-8") for where, text in numbered]
    kind = QueueKind.OUT if outqueue else QueueKind.IN
    run_command("msgflo-send-message", send(broker, queue, bodies, kind, connect_timeout))


def checked(where: str, text: str) -> str:
    """``text`` if it is JSON; a bare word is the usual mistake, so quoting is suggested."""
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        stripped = text.strip()
        hint = ""
        if stripped[:1] not in ("{", "[", '"'):
            hint = f"; a string needs JSON quotes: '{orjson.dumps(stripped).decode()}'"
        raise click.UsageError(f"Invalid JSON in {where}: {exc}{hint}") from exc
    return text.strip()
