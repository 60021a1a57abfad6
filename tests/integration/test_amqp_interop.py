"""msgflo-nodejs 0.11.1 (amqplib 0.5) and our AMQP transport declare the same names in either
order without RabbitMQ refusing one of them (406 PRECONDITION_FAILED)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from msgflo.transport import Binding, BindingType, QueueKind, get_broker
from msgflo.transport.base import Broker
from tests.integration.amqp_helpers import Inbox, private_vhost, url

pytestmark = [pytest.mark.broker, pytest.mark.external]

NODE_DIR = Path(__file__).parents[1] / "external" / "node"

# Declares with the original library: queues, a round-robin binding, a discovery message.
NODE_SCRIPT = """
const transport = require('msgflo-nodejs').transport;
const [address, plan] = [process.argv[1], JSON.parse(process.argv[2])];
const broker = transport.getBroker(address);
const fail = (err) => { console.error(String(err)); process.exit(3); };
process.on('uncaughtException', fail);
broker.connect((err) => {
  if (err) return fail(err);
  const steps = plan.queues.map(([type, name, persistent]) => (next) =>
    broker.createQueue(type, name, {persistent}, next));
  steps.push((next) => broker.addBinding(plan.binding, next));
  steps.push((next) => broker.registerParticipant(plan.participant, next));
  const run = (i) => i === steps.length
    ? broker.disconnect(() => { console.log('declared'); process.exit(0); })
    : steps[i]((err) => err ? fail(err) : run(i + 1));
  run(0);
});
"""


@pytest.fixture
def vhost() -> Iterator[str]:
    with private_vhost() as name:
        yield name


@pytest.fixture
async def broker(vhost: str) -> AsyncIterator[Broker]:
    client = get_broker(url(vhost, query="fbp_queue=1"))  # announce to the original, too
    await client.connect()
    yield client
    await client.disconnect()


def plan(prefix: str) -> dict[str, object]:
    queues = [
        ["inqueue", f"{prefix}.IN", True],
        ["inqueue", f"{prefix}.TMP", False],
        ["outqueue", f"{prefix}.OUT", True],
        ["outqueue", f"{prefix}.TMPOUT", False],
        ["inqueue", f"{prefix}.DEAD", True],
    ]
    binding = Binding(f"{prefix}.OUT", f"{prefix}.IN", BindingType.ROUNDROBIN, f"{prefix}.DEAD")
    participant = {"id": f"{prefix}-1", "role": prefix, "component": "Node"}
    return {"queues": queues, "binding": binding.to_json(), "participant": participant}


async def node_declares(vhost: str, prefix: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "node", "-e", NODE_SCRIPT, url(vhost), json.dumps(plan(prefix)),
        cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "declared"


async def python_declares(broker: Broker, prefix: str) -> None:
    for kind, name, persistent in plan(prefix)["queues"]:  # type: ignore[attr-defined]
        await broker.create_queue(QueueKind(kind), name, persistent=persistent)
    src, tgt, dead = f"{prefix}.OUT", f"{prefix}.IN", f"{prefix}.DEAD"
    await broker.add_binding(Binding(src, tgt, BindingType.ROUNDROBIN, dead))
    await broker.register_participant({"id": f"{prefix}-2", "role": prefix, "component": "Py"})
    await broker.flush()


async def test_node_declares_first_then_python(vhost: str, broker: Broker) -> None:
    prefix = uuid.uuid4().hex[:8]
    await node_declares(vhost, prefix)
    await python_declares(broker, prefix)
    # Both announcements ended up in the queue the original coordinator reads (fbp_queue=1).
    inbox = Inbox(broker)
    await broker.subscribe_participant_change(inbox)
    ids = {m.data["payload"]["id"] for m in await inbox.take(2)}
    assert ids == {f"{prefix}-1", f"{prefix}-2"}


async def test_python_declares_first_then_node(vhost: str, broker: Broker) -> None:
    prefix = uuid.uuid4().hex[:8]
    await python_declares(broker, prefix)
    await node_declares(vhost, prefix)
    # The topology still routes: our send through the round-robin binding reaches the inqueue.
    inbox = Inbox(broker)
    await broker.subscribe_to_queue(f"{prefix}.IN", inbox)
    await broker.send_to(QueueKind.OUT, f"{prefix}.OUT", "from python")
    assert [m.data for m in await inbox.take(1)] == ["from python"]
