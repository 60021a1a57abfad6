"""msgflo-send-message and msgflo-dump-message as processes, on both brokers."""

from __future__ import annotations

import asyncio
import json

import pytest

from msgflo.transport import Message, QueueKind, get_client
from tests.brokers import MOSQUITTO, NATS, NATS_JETSTREAM, RABBITMQ, require_broker
from tests.integration.processes import BIN

pytestmark = pytest.mark.broker
WAIT = 15.0


@pytest.fixture(
    params=["mqtt", "amqp", "nats", "nats-js"],
    ids=["mosquitto", "rabbitmq", "nats", "nats-jetstream"],
)
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "mqtt":
        require_broker(1883, "Mosquitto")
        return MOSQUITTO
    if request.param.startswith("nats"):
        require_broker(4222, "NATS")
        return NATS_JETSTREAM if request.param == "nats-js" else NATS
    require_broker(5672, "RabbitMQ")
    return RABBITMQ


async def run(*argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_send_message_arrives(broker_url: str, prefix: str) -> None:
    queue = f"{prefix}.IN"
    client = get_client(broker_url)
    await client.connect()
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def keep(message: Message) -> None:
        got.put_nowait(message)
        await client.ack_message(message)

    await client.create_queue(QueueKind.IN, queue)
    await client.subscribe_to_queue(queue, keep)
    try:
        sender = str(BIN / "msgflo-send-message")
        code, _, err = await run(
            sender, "--broker", broker_url, "--queue", queue, "--json", '{"a": [1, "ü"]}'
        )
        assert code == 0, err
        assert (await asyncio.wait_for(got.get(), WAIT)).data == {"a": [1, "ü"]}
        code, _, err = await run(
            sender, "--broker", broker_url, "--queue", queue, "--json", "-", stdin=b"42"
        )
        assert code == 0, err
        assert (await asyncio.wait_for(got.get(), WAIT)).data == 42
    finally:
        if broker_url.startswith("amqp"):
            await client.remove_queue(QueueKind.IN, queue)
        await client.disconnect()


async def test_dump_message_prints_what_arrives(broker_url: str, prefix: str) -> None:
    queue = f"{prefix}.OUT"
    dump = asyncio.create_task(
        run(
            str(BIN / "msgflo-dump-message"),
            "--broker",
            broker_url,
            "--queue",
            queue,
            "--amount",
            "2",
            "--timeout",
            "20",
        )
    )
    client = get_client(broker_url)
    await client.connect()
    try:
        # The dumper subscribes at its own pace: MQTT keeps nothing, so send until it is done.
        sent = 0
        while not dump.done() and sent < 200:
            await client.send_raw(
                QueueKind.IN, queue, b'{"n": 1}' if sent % 2 == 0 else b"plain text"
            )
            sent += 1
            await asyncio.wait([dump], timeout=0.1)
        code, out, err = await dump
        assert code == 0, err
        printed = json.loads(out)
        assert len(printed) == 2
        assert all(item in ({"n": 1}, "plain text") for item in printed)
    finally:
        if broker_url.startswith("amqp"):
            await client.remove_queue(QueueKind.IN, queue)
        await client.disconnect()


async def test_dump_message_times_out_with_exit_1(broker_url: str, prefix: str) -> None:
    code, out, err = await run(
        str(BIN / "msgflo-dump-message"),
        "--broker",
        broker_url,
        "--queue",
        f"{prefix}.NONE",
        "--timeout",
        "0.5",
    )
    assert code == 1
    assert "0 of 1 messages arrived" in err and out == ""
    if broker_url.startswith("amqp"):
        client = get_client(broker_url)
        await client.connect()
        await client.remove_queue(QueueKind.IN, f"{prefix}.NONE")
        await client.disconnect()


async def test_unreachable_broker_is_one_line() -> None:
    code, _, err = await run(
        str(BIN / "msgflo-send-message"),
        "--broker",
        "mqtt://127.0.0.1:1",
        "--queue",
        "q",
        "--json",
        "1",
        "--connect-timeout",
        "3",
    )
    assert code == 1
    assert err.strip().splitlines() == [err.strip()] and "127.0.0.1:1" in err
