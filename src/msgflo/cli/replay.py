"""``msgflo-replay``: list the dead letters in a queue by reason, and send chosen ones back.

Dead letters are kept by RabbitMQ: in the queue of a ``DEAD_`` edge, or in the parking queue
``dead-<inqueue>`` where a participant puts those nothing takes (docs/deadletters.md).  The tool
takes every message of the queue without acknowledging it, so that whatever it does not send
back returns to the queue when it disconnects.  Each chosen message is published to its inqueue
and confirmed by the broker before its dead letter is acked, one at a time: nothing is lost, and
the tool sends nothing twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import click

from msgflo.cli.common import broker_option, run_command
from msgflo.transport import Client, Message, QueueKind, TransportError, get_client

READ_ALL = 65535
"""AMQP prefetch (its largest value) while reading a queue: one pass sees this many at most."""
IDLE = 1.0
"""Seconds without a new delivery after which the queue counts as read."""


@dataclass(frozen=True)
class Selection:
    reason: str | None
    match: str | None
    limit: int | None

    def picks(self, message: Message) -> bool:
        why = message.reason or {}
        if self.reason is not None and str(why.get("reason", "")) != self.reason:
            return False
        text = f"{why.get('type', '')}: {why.get('error', '')}"
        return self.match is None or self.match in text


def _reading_url(broker: str) -> str:
    parts = urlsplit(broker)
    if not parts.scheme.startswith("amqp"):
        return broker
    query = dict(parse_qsl(parts.query))
    query["prefetch"] = str(READ_ALL)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _kind(message: Message) -> tuple[str, str]:
    """What dead letters are counted by: their reason and the exception's type."""
    why = message.reason or {}
    return str(why.get("reason", "(no reason)")), str(why.get("type", ""))


def _summary(letters: list[Message]) -> list[str]:
    """One line per kind, most frequent first, with the first one's error as an example."""
    counts = Counter(_kind(m) for m in letters)
    example: dict[tuple[str, str], str] = {}
    for message in letters:
        example.setdefault(_kind(message), str((message.reason or {}).get("error", "")))
    lines = []
    for (reason, kind), count in counts.most_common():
        detail = ": ".join(part for part in (kind, example[(reason, kind)]) if part)
        more = " (first of them)" if count > 1 and detail else ""
        lines.append(f"{count:8}  {reason:10} {detail}{more}")
    return lines


def home_of(message: Message, queue: str) -> str | None:
    """Where a dead letter came from: its reason's ``queue``, else the inqueue of a parking
    queue ``dead-<inqueue>``."""
    source = (message.reason or {}).get("queue")
    if isinstance(source, str) and source:
        return source
    return queue[len("dead-") :] if queue.startswith("dead-") else None


async def read_all(client: Client, queue: str) -> list[Message]:
    if not client.address.scheme.startswith("amqp"):
        raise TransportError(
            f"{client.address.redacted()} keeps no dead letters to replay (RabbitMQ does): "
            "connect the dead-letter port to a participant that stores them"
        )
    await client.check_queue(queue)
    found = await client.queue_depth(queue)
    depth = found.messages if found is not None else READ_ALL  # unknown: read until idle
    taken: list[Message] = []
    arrived = asyncio.Event()

    async def take(message: Message) -> None:
        taken.append(message)
        arrived.set()

    await client.subscribe_to_queue(queue, take)
    while len(taken) < depth:
        arrived.clear()
        try:
            await asyncio.wait_for(arrived.wait(), IDLE)
        except TimeoutError:
            break
    return taken


async def replay(
    broker: str, queue: str, selection: Selection, to: str | None, send: bool, timeout: float
) -> int:
    client = get_client(_reading_url(broker), connect_timeout=timeout)
    await client.connect()
    try:
        letters = await read_all(client, queue)
        click.echo(f"{len(letters)} dead letter(s) in {queue!r}")
        for line in _summary(letters):
            click.echo(line)
        chosen = [m for m in letters if selection.picks(m)][: selection.limit]
        if not send:
            click.echo(f"{len(chosen)} selected; --replay sends them back")
            return 0
        sent = 0
        for message in chosen:
            target = to or home_of(message, queue)
            if target is None:
                click.echo("msgflo-replay: no inqueue known for a dead letter: use --to", err=True)
                break
            await client.send_checked(QueueKind.IN, target, message.body)
            await client.ack_message(message)
            sent += 1
        await client.flush()
        click.echo(f"replayed {sent} of {len(letters)}; {len(letters) - sent} left in {queue!r}")
        return 0 if sent == len(chosen) else 1
    finally:
        await client.disconnect()  # whatever was not acked goes back to the queue


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@broker_option(announce=True)
@click.option(
    "--queue",
    "-q",
    required=True,
    help="Queue holding dead letters (dead-<inqueue>, or a DEAD_ edge's).",
)
@click.option(
    "--reason", help="Only dead letters with this reason (error, nack, schema, poison, rejected)."
)
@click.option("--match", help="Only dead letters whose 'type: error' contains this text.")
@click.option("--limit", "-n", type=click.IntRange(min=1), help="At most this many.")
@click.option("--to", help="Send them to this queue (default: the inqueue each came from).")
@click.option("--replay", "send", is_flag=True, help="Send the selected dead letters back.")
@click.option("--connect-timeout", type=float, default=30.0, show_default=True, help="Seconds.")
def main(
    broker: str,
    queue: str,
    reason: str | None,
    match: str | None,
    limit: int | None,
    to: str | None,
    send: bool,
    connect_timeout: float,
) -> None:
    """List the dead letters in QUEUE by reason; with --replay, send the selected ones back to
    the inqueue they came from, each confirmed by the broker before its dead letter is removed.

    Those not selected stay in QUEUE, in their order."""
    selection = Selection(reason, match, limit)
    run_command("msgflo-replay", replay(broker, queue, selection, to, send, connect_timeout))
