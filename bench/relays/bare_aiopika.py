"""The limit for a Python AMQP relay with at-least-once delivery, written plainly with aio-pika:
prefetch 100, every publish confirmed before the input is acked.

Declares the same topology as msgflo (durable queue with a dead-letter exchange argument, a
fanout exchange of the same name bound to it; a fanout exchange for the output).

Usage: python bare_aiopika.py URL IN_QUEUE OUT_EXCHANGE
"""

from __future__ import annotations

import asyncio
import signal
import sys

import aio_pika


async def relay(url: str, inbound: str, outbound: str) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=100)
    source = await channel.declare_exchange(inbound, aio_pika.ExchangeType.FANOUT, durable=True)
    queue = await channel.declare_queue(
        inbound, durable=True, arguments={"x-dead-letter-exchange": f"dead-{inbound}"}
    )
    await queue.bind(source)
    target = await channel.declare_exchange(outbound, aio_pika.ExchangeType.FANOUT, durable=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)

    async def consume() -> None:
        async with queue.iterator() as messages:
            async for message in messages:
                await target.publish(aio_pika.Message(message.body), routing_key="")
                await message.ack()

    task = asyncio.create_task(consume())
    await stop.wait()
    task.cancel()
    await connection.close()


if __name__ == "__main__":
    asyncio.run(relay(sys.argv[1], sys.argv[2], sys.argv[3]))
