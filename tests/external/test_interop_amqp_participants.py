"""Whole participants of both libraries declare the same RabbitMQ queues and exchanges, in
either order: no 406 PRECONDITION_FAILED (msgflo-nodejs would die of it), and data flows
through queues they share (competing consumers) and queues that connect them without any
binding (msgflo-nodejs' same-named exchange on every inqueue)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

import msgflo
from msgflo.transport import QueueKind, get_client
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

MESSAGES = 12


def py_tag(role: str, inqueue: str, outqueue: str) -> msgflo.Participant:
    """Our participant, with the queues the test wants it to share with Node's."""

    class Tag(msgflo.Participant):
        component = "PyTag"
        inports = {"in": {"type": "object", "queue": inqueue}}
        outports = {"out": {"type": "object", "queue": outqueue}}

        async def process(self, port: str, msg: msgflo.Message) -> None:
            await self.send("out", {**msg.data, "path": [*msg.data["path"], "python"]})

    return Tag(role)


@contextlib.asynccontextmanager
async def node_repeat(url: str, role: str, inqueue: str, outqueue: str) -> AsyncIterator[Any]:
    env = {**node_env(), "NODE_REPEAT_IN": inqueue, "NODE_REPEAT_OUT": outqueue}
    argv = [str(NODE_BIN / "msgflo-nodejs"), "--name", role, str(NODE_COMPONENTS / "NodeRepeat.js")]
    async with running(argv, url, env=env) as (process, ready):
        assert ready == f"{role} connected to {url}"
        yield process


@pytest.mark.parametrize("node_first", [True, False], ids=["node-first", "python-first"])
async def test_node_and_python_participants_share_and_connect_queues(
    vhost: LazyVhost, prefix: str, node_first: bool
) -> None:
    """``n`` (Node) and ``twin`` (ours) consume the same inqueue and publish on the same
    exchange; ``after`` (ours) consumes that exchange's same-named queue and publishes into
    ``m``'s (Node) inqueue exchange; ``m`` publishes where the test reads."""
    require_node()
    n_in, n_out, m_in, m_out = f"{prefix}n.IN", f"{prefix}n.OUT", f"{prefix}m.IN", f"{prefix}m.OUT"
    with broker_for("amqp", vhost) as url:
        async with contextlib.AsyncExitStack() as stack:
            client = get_client(url)
            await client.connect()
            stack.push_async_callback(client.disconnect)
            ours = [py_tag(f"{prefix}twin", n_in, n_out), py_tag(f"{prefix}after", n_out, m_in)]

            async def start_ours() -> None:
                for participant in ours:
                    await participant.start(client)
                    stack.push_async_callback(participant.stop)

            async def start_node() -> list[Any]:
                return [
                    await stack.enter_async_context(node_repeat(url, f"{prefix}n", n_in, n_out)),
                    await stack.enter_async_context(node_repeat(url, f"{prefix}m", m_in, m_out)),
                ]

            if node_first:
                nodes = await start_node()
                await start_ours()
            else:
                await start_ours()
                nodes = await start_node()
            watch = await stack.enter_async_context(watcher(url))
            out = await watch.read(m_out)
            for i in range(MESSAGES):
                await watch.send(n_in, {"i": i, "path": []})
            results = [await next_item(out) for _ in range(MESSAGES)]
            assert sorted(r["i"] for r in results) == list(range(MESSAGES))
            first_hops = {r["path"][0] for r in results}
            assert first_hops == {"node", "python"}, "both consumers of the shared queue worked"
            assert all(r["path"][1:] == ["python", "node"] for r in results)
            assert [p.returncode for p in nodes] == [None, None], "no channel error ended Node"
            await watch.broker.remove_queue(QueueKind.IN, m_out)
