"""``msgflo-send-message``: put one message on a queue (the original's tool, working).

Fixed against the original: the installed command runs (it could not find its own module), the
message is confirmed by the broker before the command exits, and on AMQP a message that no queue
takes (the queue does not exist, its name is in the wrong case, nothing is bound to the exchange)
is reported, with exit code 1, instead of being dropped in silence.  An MQTT broker cannot tell.
"""

from __future__ import annotations

import sys

import click
import orjson

from msgflo.cli.common import broker_option, run_command
from msgflo.transport import QueueKind, get_client


async def send(broker: str, queue: str, body: bytes, kind: QueueKind, timeout: float) -> int:
    client = get_client(broker, connect_timeout=timeout)
    await client.connect()
    try:
        await client.send_checked(kind, queue, body)
    finally:
        await client.disconnect()
    return 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@broker_option(announce=True)
@click.option("--queue", "-q", help="Queue (or MQTT topic) to send to.")
@click.option("--json", "payload", help="Payload, valid JSON. '-' reads it from stdin.")
@click.option(
    "--outqueue",
    is_flag=True,
    help="Publish through the queue's exchange (as a participant's outport does) "
    "instead of straight into the queue.",
)
@click.option("--connect-timeout", type=float, default=30.0, show_default=True, help="Seconds.")
def main(
    broker: str, queue: str | None, payload: str | None, outqueue: bool, connect_timeout: float
) -> None:
    """Send one JSON message to a queue.

    On AMQP a message that no queue takes (a missing or misspelt queue) is an error, exit
    code 1; MQTT cannot tell.
    """
    if not queue:
        raise click.UsageError("Missing queue to send to (--queue)")
    if payload is None:
        raise click.UsageError("Missing message payload (--json)")
    if payload == "-":
        payload = sys.stdin.read()
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise click.UsageError(f"Invalid JSON in --json: {exc}") from None
    kind = QueueKind.OUT if outqueue else QueueKind.IN
    run_command(
        "msgflo-send-message",
        send(broker, queue, payload.encode("utf-8"), kind, connect_timeout),
    )
