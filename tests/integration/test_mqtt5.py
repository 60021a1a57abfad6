"""The MQTT transport's MQTT 5 mode (``?version=5``) against Mosquitto: what a dead letter looks
like on the wire, mixed 3.1.1/5 networks, a broker that does not speak 5, and the dump tool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from msgflo.broker import embedded_broker
from msgflo.transport import (
    Binding,
    Client,
    Message,
    QueueKind,
    TransportError,
    get_broker,
    get_client,
)
from tests.brokers import MOSQUITTO, MOSQUITTO_V5, require_broker
from tests.integration.processes import BIN

pytestmark = pytest.mark.broker
WAIT = 10.0
FASTPATH = [pytest.param("", id="fastpath"), pytest.param("&fastpath=0", id="public")]


@pytest.fixture(autouse=True)
def mosquitto() -> None:
    require_broker(1883, "Mosquitto")


@pytest.fixture(params=FASTPATH)
def v5_url(request: pytest.FixtureRequest) -> str:
    return MOSQUITTO_V5 + str(request.param)


async def consumer(url: str, topic: str) -> tuple[Client, asyncio.Queue[Message]]:
    client = get_client(url, connect_timeout=WAIT)
    await client.connect()
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def take(message: Message) -> None:
        got.put_nowait(message)

    await client.subscribe_to_queue(topic, take)
    return client, got


async def fail(url: str, queue: str, body: bytes, reason: dict[str, str | int]) -> None:
    """Have a client on ``url`` nack a delivery of ``body`` from ``queue`` with ``reason``."""
    client, got = await consumer(url, queue)
    try:
        await client.send_raw(QueueKind.IN, queue, body)
        message = await asyncio.wait_for(got.get(), WAIT)
        await client.nack_message(message, reason=reason)
        await client.flush()
    finally:
        await client.disconnect()


@pytest.fixture
async def raw_v5(prefix: str) -> AsyncIterator[asyncio.Queue[aiomqtt.Message]]:
    """A plain MQTT 5 subscriber (no msgflo) on ``dead-<prefix>.IN``."""
    async with aiomqtt.Client(
        "127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5, timeout=WAIT
    ) as session:
        await session.subscribe(f"dead-{prefix}.IN")
        got: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()

        async def read() -> None:
            async for message in session.messages:
                got.put_nowait(message)

        reader = asyncio.get_running_loop().create_task(read())
        yield got
        reader.cancel()


async def test_ordinary_messages_round_trip_unchanged(v5_url: str, prefix: str) -> None:
    client, got = await consumer(v5_url, f"{prefix}.IN")
    try:
        await client.send_raw(QueueKind.IN, f"{prefix}.IN", b'{"n": 1}')
        await client.send_raw(QueueKind.IN, f"{prefix}.IN", b"\x00\xffbinary")
        first, second = await asyncio.wait_for(got.get(), WAIT), await got.get()
        assert (first.data, first.reason) == ({"n": 1}, None)
        assert (second.body, second.reason) == (b"\x00\xffbinary", None)
    finally:
        await client.disconnect()


async def test_dead_letter_is_the_original_payload_with_the_reason_as_user_properties(
    v5_url: str, prefix: str, raw_v5: asyncio.Queue[aiomqtt.Message]
) -> None:
    """What a non-msgflo MQTT 5 consumer of ``dead-<queue>`` sees."""
    reason: dict[str, str | int] = {
        "reason": "error",
        "error": 'cannot take "x"',
        "traceback": "line 1\nline 2",
        "attempt": 2,
    }
    await fail(v5_url, f"{prefix}.IN", b'{"bad": "x"}', reason)
    message = await asyncio.wait_for(raw_v5.get(), WAIT)
    assert message.payload == b'{"bad": "x"}'
    assert message.properties is not None
    properties = dict(getattr(message.properties, "UserProperty", []))
    assert properties["msgflo-reason"] == "error"
    assert properties["msgflo-attempt"] == "2"
    assert json.loads(f'"{properties["msgflo-error"]}"') == 'cannot take "x"'
    assert json.loads(f'"{properties["msgflo-traceback"]}"') == "line 1\nline 2"


async def test_v5_consumer_gets_payload_and_reason_of_either_kind_of_dead_letter(
    v5_url: str, prefix: str
) -> None:
    """A mixed network: one failing client speaks 3.1.1 (an envelope), one speaks 5."""
    dead, got = await consumer(v5_url, f"dead-{prefix}.IN")
    try:
        await fail(MOSQUITTO, f"{prefix}.IN", b'{"from": "3.1.1"}', {"error": "old"})
        await fail(MOSQUITTO_V5, f"{prefix}.IN", b'{"from": "5"}', {"error": "new"})
        old, new = await asyncio.wait_for(got.get(), WAIT), await got.get()
        assert (old.data, old.reason) == ({"from": "3.1.1"}, {"error": "old"})
        assert (new.data, new.reason) == ({"from": "5"}, {"error": "new"})
    finally:
        await dead.disconnect()


async def test_3_1_1_consumer_gets_the_bare_payload_of_a_v5_dead_letter(prefix: str) -> None:
    """The broker drops user properties towards a 3.1.1 subscriber: the data, no reason."""
    dead, got = await consumer(MOSQUITTO, f"dead-{prefix}.IN")
    try:
        await fail(MOSQUITTO_V5, f"{prefix}.IN", b'{"n": 3}', {"error": "lost on 3.1.1"})
        message = await asyncio.wait_for(got.get(), WAIT)
        assert (message.data, message.reason) == ({"n": 3}, None)
    finally:
        await dead.disconnect()


async def test_broker_without_mqtt5_is_one_clear_error() -> None:
    async with embedded_broker() as url:  # amqtt speaks 3.1.1 only
        client = get_client(f"{url}?version=5", connect_timeout=WAIT)
        started = time.monotonic()
        with pytest.raises(TransportError) as refused:
            await client.connect()
        assert time.monotonic() - started < WAIT, "refused, not timed out"
        assert str(refused.value) == (
            f"cannot connect to {url}?version=5: the broker does not accept MQTT 5 "
            "(remove version=5 to speak 3.1.1)"
        )


def test_an_unknown_version_is_refused_when_the_client_is_made() -> None:
    with pytest.raises(TransportError, match=r"version='6' is not an MQTT version \(5 or 3.1.1\)"):
        get_client(f"{MOSQUITTO}?version=6")


async def test_dump_message_prints_a_v5_dead_letter_with_its_reason(prefix: str) -> None:
    queue = f"dead-{prefix}.IN"
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo-dump-message"),
        *("--broker", MOSQUITTO_V5, "-q", queue, "--timeout", "20", "--follow"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = b""
        async with asyncio.timeout(2 * WAIT):
            while not line:  # the dump subscribes after it starts: fail until it has one
                await fail(MOSQUITTO_V5, f"{prefix}.IN", b'{"bad": "dumped"}', {"error": "no"})
                with contextlib.suppress(TimeoutError):
                    line = await asyncio.wait_for(proc.stdout.readline(), 0.5)
        assert json.loads(line) == {"data": {"bad": "dumped"}, "deadletter": {"error": "no"}}
    finally:
        proc.terminate()
        await proc.wait()


async def test_binding_records_are_read_in_mqtt_5_too() -> None:
    """``msgflo-setup --check`` and other coordinators read every binder's retained record on
    a connection of their own: in v5 mode that one speaks v5 as well (a v5-only broker would
    refuse a 3.1.1 reader)."""
    tag = uuid.uuid4().hex[:8]
    binding = Binding(f"{tag}.OUT", f"{tag}.IN")
    writer, reader = get_broker(MOSQUITTO_V5), get_broker(MOSQUITTO_V5)
    await writer.connect()
    await reader.connect()
    try:
        await writer.announce_bindings([binding])
        assert binding in await reader.broker_bindings()
    finally:
        await writer.disconnect()
        await reader.disconnect()
    assert binding not in await reader_bindings()


async def reader_bindings() -> list[Binding]:
    reader = get_broker(MOSQUITTO_V5)
    await reader.connect()
    try:
        return await reader.broker_bindings()
    finally:
        await reader.disconnect()
