"""msgflo-replay: dead letters listed by reason, the chosen ones sent back once the cause is
fixed, each confirmed before its dead letter goes; the rest stay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import msgflo
from msgflo.transport import Broker, Message, QueueKind, get_broker, get_client
from tests.brokers import MOSQUITTO, RABBITMQ, require_broker
from tests.integration.processes import BIN

pytestmark = pytest.mark.broker
WAIT = 10.0


class Picky(msgflo.Participant):
    """Takes objects with a whole ``n``; fails negative ones (the "bug" fixed later)."""

    component = "test/Picky"
    inports = {"in": {"type": "object", "schema": {"type": "object", "required": ["n"]}}}
    outports = {"out": "object"}
    fixed = False

    async def process(self, port: str, msg: Message) -> None:
        if msg.data["n"] < 0 and not self.fixed:
            raise ValueError(f"negative: {msg.data['n']}")
        await self.send("out", msg.data)


class Fixed(Picky):
    fixed = True


async def depth(broker: Broker, queue: str) -> int | None:
    found = await broker.queue_depth(queue)
    return None if found is None else found.messages


async def replay(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo-replay"),
        "--broker",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_list_by_reason_then_replay_the_fixed_ones(prefix: str) -> None:
    require_broker(5672, "RabbitMQ")
    role, parked = f"{prefix}p", f"dead-{prefix}p.IN"
    broker = get_broker(RABBITMQ)
    await broker.connect()
    outputs: asyncio.Queue[Any] = asyncio.Queue()

    async def keep(message: Message) -> None:
        outputs.put_nowait(message.data)
        await broker.ack_message(message)

    client = get_client(RABBITMQ)
    await client.connect()
    try:
        await broker.create_queue(QueueKind.IN, f"{role}.OUT")
        await broker.subscribe_to_queue(f"{role}.OUT", keep)
        picky = Picky(role)
        await picky.start(client)
        for data in ({"n": -1}, {"n": -2}, {"x": 1}, {"n": 5}):
            await client.send_to(QueueKind.IN, f"{role}.IN", data)
        assert await asyncio.wait_for(outputs.get(), WAIT) == {"n": 5}
        for _ in range(100):  # the three failures are parked one by one
            if await depth(broker, parked) == 3:
                break
            await asyncio.sleep(0.05)
        await picky.stop()

        code, out, err = await replay(RABBITMQ, "-q", parked)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == f"3 dead letter(s) in {parked!r}"
        assert "       2  error      ValueError: negative: -1 (first of them)" in lines
        assert any(line.startswith("       1  schema     $:") for line in lines), out
        assert await depth(broker, parked) == 3, "listing takes nothing"

        fixed = Fixed(role)
        await fixed.start(client)
        code, out, err = await replay(RABBITMQ, "-q", parked, "--reason", "error", "--replay")
        assert code == 0, err
        assert out.splitlines()[-1] == f"replayed 2 of 3; 1 left in {parked!r}"
        got = sorted(
            [await asyncio.wait_for(outputs.get(), WAIT) for _ in range(2)], key=lambda d: d["n"]
        )
        assert got == [{"n": -2}, {"n": -1}]
        await client.send_to(QueueKind.IN, f"{role}.IN", {"n": 9})
        assert await asyncio.wait_for(outputs.get(), WAIT) == {"n": 9}, "nothing sent twice"
        assert outputs.empty()
        assert await depth(broker, parked) == 1, "the schema failure stays"
        await fixed.stop()
    finally:
        for queue in (parked, f"{role}.IN", f"{role}.OUT"):
            await broker.remove_queue(QueueKind.IN, queue)
        await client.disconnect()
        await broker.disconnect()


async def test_mqtt_keeps_no_dead_letters_one_line() -> None:
    require_broker(1883, "Mosquitto")
    code, out, err = await replay(MOSQUITTO, "-q", "dead-x.IN")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        f"msgflo-replay: {MOSQUITTO} keeps no dead letters to replay (RabbitMQ does): "
        "connect the dead-letter port to a participant that stores them"
    ]


async def test_a_missing_queue_is_one_line() -> None:
    require_broker(5672, "RabbitMQ")
    code, _, err = await replay(RABBITMQ, "-q", "dead-surely-missing.IN")
    assert code == 1
    assert err.strip().startswith(
        "msgflo-replay: queue or exchange 'dead-surely-missing.IN' does not exist"
    )
