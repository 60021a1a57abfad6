"""``msgflo-dump-message``: print messages that arrive on a queue.

Against the original: on AMQP an existing queue is read as the original reads it, and an outport
(an exchange) through a private queue that goes away with the command, so a dump never leaves a
queue behind that fills forever; a name that is neither is an error (with the right-case name
when there is one).  ``--follow`` prints messages as they arrive, ``--timeout`` ends a wait that
would otherwise last forever, and non-JSON payloads are printed as JSON strings.  A dead letter
is printed with its reason beside its data.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import click
import orjson
from click.core import ParameterSource

from msgflo.cli.common import broker_option, run_command
from msgflo.transport import Message, get_client


def _printable(message: Message) -> Any:
    """The data; a dead letter's as ``{"data": ..., "deadletter": <reason>}``, so that the
    payload that failed and why are both shown (docs/deadletters.md)."""
    data = message.data
    printable = data.decode("latin-1") if isinstance(data, bytes) else data
    if message.reason is not None:
        return {"data": printable, "deadletter": message.reason}
    return printable


async def dump(
    broker: str,
    queue: str,
    amount: int | None,
    timeout: float | None,
    connect_timeout: float,
    follow: bool,
) -> int:
    """Collect ``amount`` messages (``None``: until interrupted); print them at the end, or each
    as one JSON line as it arrives when following."""
    client = get_client(broker, connect_timeout=connect_timeout)
    await client.connect()
    received: list[Any] = []
    done = asyncio.Event()

    async def collect(message: Message) -> None:
        if amount is not None and len(received) >= amount:
            await client.nack_message(message, requeue=True)
            return
        received.append(_printable(message))
        await client.ack_message(message)
        if follow:
            sys.stdout.write(orjson.dumps(received[-1]).decode() + "\n")
            sys.stdout.flush()
        if len(received) == amount:
            done.set()

    if follow:  # Ctrl-C is the normal end of following: stop cleanly, exit 0
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
    try:
        consumed = await client.tap(queue, collect)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            wanted = f"{len(received)} of {amount}" if amount else f"{len(received)}"
            click.echo(
                f"msgflo-dump-message: {wanted} messages arrived on {queue!r} within {timeout:g} s",
                err=True,
            )
            if not received:
                return 1
        await client.unsubscribe_from_queue(consumed)
    finally:
        await client.disconnect()
    if not follow:
        output = received[0] if amount == 1 and received else received
        sys.stdout.write(orjson.dumps(output, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if amount is None or len(received) == amount else 1


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@broker_option(announce=True)
@click.option("--queue", "-q", help="Queue, outport exchange (AMQP) or topic (MQTT) to read.")
@click.option(
    "--amount",
    "-n",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Messages to collect (with --follow: stop after this many; default: no limit).",
)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Print each message as one line of JSON as it arrives, until Ctrl-C.",
)
@click.option("--timeout", type=float, help="Give up after this many seconds (default: wait).")
@click.option("--connect-timeout", type=float, default=30.0, show_default=True, help="Seconds.")
@click.pass_context
def main(
    ctx: click.Context,
    broker: str,
    queue: str | None,
    amount: int,
    follow: bool,
    timeout: float | None,
    connect_timeout: float,
) -> None:
    """Print the data of AMOUNT messages from a queue as JSON (one value, or a list).

    A dead letter (read from a dead_<inport> queue or the queue of a DEAD_ edge) is printed as
    {"data": ..., "deadletter": {"reason": ..., "error": ...}}.

    On AMQP an existing queue is read (its messages are taken, as its consumers would take
    them); an outport is copied through a private queue that is deleted when the command ends.
    """
    if not queue:
        raise click.UsageError("Missing queue to dump messages from (--queue)")
    limit: int | None = amount
    if follow and ctx.get_parameter_source("amount") is ParameterSource.DEFAULT:
        limit = None
    run_command("msgflo-dump-message", dump(broker, queue, limit, timeout, connect_timeout, follow))
