"""Dead letters cross between the libraries on RabbitMQ: what a msgflo-nodejs participant nacks
(dead-lettered by the broker to ``dead-<queue>``) reaches our participant on its ``DEAD_IN``
edge, with ``x-death`` read as the reason; and what ours fails (published by the participant to
the same exchange, reason in headers) reaches a Node participant on such an edge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

import msgflo
from msgflo.transport import Binding, BindingType, Message, get_client
from tests.external import interop_helpers
from tests.external.interop_helpers import (
    NODE_BIN,
    NODE_COMPONENTS,
    LazyVhost,
    broker_for,
    next_item,
    node_env,
    require_node,
    watcher,
)
from tests.integration.processes import running

vhost = interop_helpers.vhost
pytestmark = [pytest.mark.broker, pytest.mark.external]


class Recover(msgflo.Participant):
    component = "PyRecover"
    inports = {"in": "object"}

    def __init__(self, role: str) -> None:
        super().__init__(role)
        self.got: asyncio.Queue[Message] = asyncio.Queue()

    async def process(self, port: str, msg: Message) -> None:
        self.got.put_nowait(msg)


class Fails(msgflo.Participant):
    component = "PyFails"
    inports = {"in": "object"}

    async def process(self, port: str, msg: Message) -> None:
        raise RuntimeError("python says no")


@contextlib.asynccontextmanager
async def node(url: str, component: str, role: str, **env: str) -> AsyncIterator[Any]:
    argv = [str(NODE_BIN / "msgflo-nodejs"), "--name", role, str(NODE_COMPONENTS / component)]
    async with running(argv, url, env={**node_env(), **env}) as (process, ready):
        assert ready == f"{role} connected to {url}"
        yield process


async def test_node_nacks_reach_our_dead_letter_edge(vhost: LazyVhost, prefix: str) -> None:
    require_node()
    with broker_for("amqp", vhost) as url:
        async with contextlib.AsyncExitStack() as stack:
            client = get_client(url)
            await client.connect()
            stack.push_async_callback(client.disconnect)
            recover = Recover(f"{prefix}rec")
            await recover.start(client)
            stack.push_async_callback(recover.stop)
            await stack.enter_async_context(node(url, "NodeFails.js", f"{prefix}nf"))
            watch = await stack.enter_async_context(watcher(url))
            edge = Binding("", f"{prefix}nf.IN", BindingType.ROUNDROBIN, f"{prefix}rec.IN")
            await watch.broker.add_binding(edge)
            await watch.send(f"{prefix}nf.IN", {"order": 7})
            got = await asyncio.wait_for(recover.got.get(), interop_helpers.WAIT)
            assert got.data == {"order": 7}
            assert got.reason is not None
            assert got.reason["reason"] == "rejected" and got.reason["source"] == "x-death"
            assert got.reason["queue"] == f"{prefix}nf.IN"


async def test_our_failures_reach_a_node_participant_on_a_dead_letter_edge(
    vhost: LazyVhost, prefix: str
) -> None:
    require_node()
    with broker_for("amqp", vhost) as url:
        async with contextlib.AsyncExitStack() as stack:
            client = get_client(url)
            await client.connect()
            stack.push_async_callback(client.disconnect)
            fails = Fails(f"{prefix}pf")
            await fails.start(client)
            stack.push_async_callback(fails.stop)
            await stack.enter_async_context(node(url, "NodeRepeat.js", f"{prefix}nr"))
            watch = await stack.enter_async_context(watcher(url))
            out = await watch.read(f"{prefix}nr.OUT")
            edge = Binding("", f"{prefix}pf.IN", BindingType.ROUNDROBIN, f"{prefix}nr.IN")
            await watch.broker.add_binding(edge)
            await watch.send(f"{prefix}pf.IN", {"order": 8, "path": []})
            assert await next_item(out) == {"order": 8, "path": ["node"]}
