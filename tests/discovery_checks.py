"""A coordinator started after its participants: the checks every transport must pass.

Participants run with a heartbeat period of an hour, so only the coordinator's discovery
request can make them known in time; a Node-like participant (it announces, consumes its inport,
and knows nothing of requests or control) must neither be asked nor hold up the others."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import msgflo
from msgflo.coordinator import Coordinator, CoordinatorOptions
from msgflo.transport import Client, Message, QueueKind, get_broker, get_client

WAIT = 10.0
LONG_PERIOD = "3600"


class Upper(msgflo.Participant):
    component = "test/Upper"
    inports = {"in": "string"}
    outports = {"out": "string"}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        await self.send("out", str(msg.data).upper())


def chain(prefix: str, *names: str) -> dict[str, Any]:
    return {
        "processes": {f"{prefix}{n}": {"component": "test/Upper"} for n in names},
        "connections": [
            {
                "src": {"process": f"{prefix}{a}", "port": "out"},
                "tgt": {"process": f"{prefix}{b}", "port": "in"},
            }
            for a, b in itertools.pairwise(names)
        ],
    }


@asynccontextmanager
async def clients(url: str) -> AsyncIterator[list[Client]]:
    opened: list[Client] = []
    try:
        yield opened
    finally:
        for client in opened:
            await client.disconnect()


async def connect(url: str, opened: list[Client]) -> Client:
    client = get_client(url)
    await client.connect()
    opened.append(client)
    return client


async def node_like(url: str, opened: list[Client], role: str) -> tuple[Client, asyncio.Queue[Any]]:
    """Consume ``role``'s inport and answer nothing: a Node participant whose next heartbeat
    is still to come (on AMQP a heartbeat sent earlier would wait in the queue ``fbp``)."""
    client = await connect(url, opened)
    got: asyncio.Queue[Any] = asyncio.Queue()
    queue = f"{role}.IN"
    await client.create_queue(QueueKind.IN, queue)
    await client.create_queue(QueueKind.OUT, f"{role}.OUT")

    async def keep(message: Message) -> None:
        got.put_nowait(message.data)
        await client.ack_message(message)

    await client.subscribe_to_queue(queue, keep)
    return client, got


async def heartbeat(client: Client, role: str) -> None:
    queue = f"{role}.IN"
    await client.register_participant(
        {
            "id": f"{role}-node",
            "role": role,
            "component": "test/Upper",
            "label": "",
            "icon": "",
            "inports": [{"id": "in", "type": "string", "queue": queue}],
            "outports": [{"id": "out", "type": "string", "queue": f"{role}.OUT"}],
        }
    )


async def wired_without_heartbeat(url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Participants a, b, c run before the coordinator; n is Node-like.  The coordinator wires
    a -> b -> c from their answers to its request, and data passes all the way to n."""
    monkeypatch.setenv("MSGFLO_DISCOVERY_PERIOD", LONG_PERIOD)
    async with clients(url) as opened:
        for name in ("a", "b", "c"):
            await Upper(f"{prefix}{name}").start(await connect(url, opened))
        node, got = await node_like(url, opened, f"{prefix}n")
        await _consume_announcements(url, chain(prefix, "a", "b", "c"))
        coordinator = Coordinator(get_broker(url), options=CoordinatorOptions(broker_url=url))
        await coordinator.start()
        try:
            graph = chain(prefix, "a", "b", "c", "n")
            await coordinator.load_graph(graph)
            others = [e for e in coordinator.wiring if f"{prefix}n" not in e]
            ok = await _until(lambda: all(coordinator.wiring[k].status == "bound" for k in others))
            assert ok, {k: str(p.status) for k, p in coordinator.wiring.items()}
            assert coordinator.pending_roles() == [f"{prefix}n"]
            # n's next heartbeat: wired at once, never asked.
            await heartbeat(node, f"{prefix}n")
            assert await coordinator.settled(WAIT)
            into_n = coordinator.wiring[f"edge {prefix}c.out -> {prefix}n.in"].binding
            assert into_n is not None and into_n not in coordinator.attached, "n is forwarded"
            assert f"{prefix}n-node" not in coordinator.binder.can_answer, "n is never asked"
            sender = await connect(url, opened)
            await sender.send_to(QueueKind.IN, f"{prefix}a.IN", "hello")
            assert await asyncio.wait_for(got.get(), WAIT) == "HELLO"
        finally:
            await coordinator.stop()


async def _consume_announcements(url: str, graph: dict[str, Any]) -> None:
    """A first coordinator takes every announcement made so far (on AMQP they would otherwise
    wait in the queue ``fbp`` for the next one), as when a coordinator is restarted."""
    first = Coordinator(get_broker(url), options=CoordinatorOptions(broker_url=url))
    await first.start()
    try:
        await first.load_graph(graph)
        assert await first.settled(WAIT)
        await asyncio.sleep(1.0)  # past the answers' jitter: none is left for the next one
    finally:
        await first.stop()


async def _until(done: Any) -> bool:
    for _ in range(int(WAIT / 0.05)):
        if done():
            return True
        await asyncio.sleep(0.05)
    return bool(done())
