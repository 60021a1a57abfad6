"""``msgflo-dump-message``: print messages that arrive on a queue.

Against the original: the queue is declared (as an inqueue, in the original's shape) so a
listener can start before the first sender, ``--timeout`` ends a wait that would otherwise last
forever, and non-JSON payloads are printed as JSON strings instead of failing.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click
import orjson

from msgflo.cli.common import broker_option, run_command
from msgflo.transport import Message, QueueKind, get_client


async def dump(
    broker: str, queue: str, amount: int, timeout: float | None, connect_timeout: float
) -> int:
    client = get_client(broker, connect_timeout=connect_timeout)
    await client.connect()
    received: list[Any] = []
    done = asyncio.Event()

    async def collect(message: Message) -> None:
        if len(received) < amount:
            data = message.data
            received.append(data.decode("latin-1") if isinstance(data, bytes) else data)
            await client.ack_message(message)
            if len(received) == amount:
                done.set()
        else:
            await client.nack_message(message, requeue=True)

    try:
        await client.create_queue(QueueKind.IN, queue)
        await client.subscribe_to_queue(queue, collect)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            click.echo(
                f"msgflo-dump-message: {len(received)} of {amount} messages arrived "
                f"on {queue!r} within {timeout:g} s",
                err=True,
            )
            if not received:
                return 1
        await client.unsubscribe_from_queue(queue)
    finally:
        await client.disconnect()
    output = received[0] if amount == 1 and received else received
    sys.stdout.write(orjson.dumps(output, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if len(received) == amount else 1


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@broker_option()
@click.option("--queue", "-q", help="Queue (or MQTT topic) to read from.")
@click.option("--amount", "-n", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--timeout", type=float, help="Give up after this many seconds (default: wait).")
@click.option("--connect-timeout", type=float, default=30.0, show_default=True, help="Seconds.")
def main(
    broker: str, queue: str | None, amount: int, timeout: float | None, connect_timeout: float
) -> None:
    """Print the data of AMOUNT messages from a queue as JSON (one value, or a list)."""
    if not queue:
        raise click.UsageError("Missing queue to dump messages from (--queue)")
    run_command("msgflo-dump-message", dump(broker, queue, amount, timeout, connect_timeout))
