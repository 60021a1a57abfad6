"""msgflo-send-message and msgflo-dump-message as processes, on both brokers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path

import pytest

from msgflo.transport import Message, QueueKind, get_client
from tests.brokers import MOSQUITTO, NATS, NATS_JETSTREAM, require_broker
from tests.integration.amqp_helpers import Rabbit, url
from tests.integration.processes import BIN
from tests.integration.run_helpers import run_msgflo

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
    return url(request.getfixturevalue("vhost"))  # a vhost of our own: "nothing left" is exact


@pytest.fixture
def amqp_url(vhost: str) -> str:
    require_broker(5672, "RabbitMQ")
    return url(vhost)


async def run(
    *argv: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
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


async def test_dump_message_prints_what_arrives_on_an_outport(broker_url: str, prefix: str) -> None:
    queue = f"{prefix}.OUT"
    client = get_client(broker_url)
    await client.connect()
    await client.create_queue(QueueKind.OUT, queue)  # as the participant owning the port does
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
    try:
        # The dumper subscribes at its own pace and an outport keeps nothing: send until done.
        sent = 0
        while not dump.done() and sent < 200:
            await client.send_raw(
                QueueKind.OUT, queue, b'{"n": 1}' if sent % 2 == 0 else b"plain text"
            )
            sent += 1
            await asyncio.wait([dump], timeout=0.1)
        code, out, err = await dump
        assert code == 0, err
        printed = json.loads(out)
        assert len(printed) == 2
        assert all(item in ({"n": 1}, "plain text") for item in printed)
        if broker_url.startswith("amqp"):  # the dump left no queue behind to fill forever
            assert Rabbit(broker_url.rsplit("/", 1)[1]).bindings_from(queue) == set()
            assert not await Rabbit(broker_url.rsplit("/", 1)[1]).exists("queue", queue)
    finally:
        await client.disconnect()


async def test_dump_message_times_out_with_exit_1(broker_url: str, prefix: str) -> None:
    client = get_client(broker_url)
    await client.connect()
    await client.create_queue(QueueKind.OUT, f"{prefix}.NONE")
    try:
        code, out, err = await run(
            str(BIN / "msgflo-dump-message"),
            "--broker",
            broker_url,
            "--queue",
            f"{prefix}.NONE",
            "--timeout",
            "0.5",
        )
    finally:
        await client.disconnect()
    assert code == 1
    assert "0 of 1 messages arrived" in err and out == ""


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


async def test_dump_follow_prints_each_message_until_interrupted(
    broker_url: str, prefix: str
) -> None:
    queue = f"{prefix}.OUT"
    client = get_client(broker_url)
    await client.connect()
    await client.create_queue(QueueKind.OUT, queue)
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo-dump-message"),
        "--broker",
        broker_url,
        "--queue",
        queue,
        "--follow",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        lines: list[object] = []
        reading = asyncio.ensure_future(proc.stdout.readline())
        for n in range(400):  # MQTT keeps nothing for a subscriber not there yet: keep sending
            await client.send_to(QueueKind.OUT, queue, {"n": n})
            done, _ = await asyncio.wait([reading], timeout=0.05)
            if done:
                lines.append(json.loads(reading.result()))
                if len(lines) == 3:
                    break
                reading = asyncio.ensure_future(proc.stdout.readline())
        assert len(lines) == 3
        numbers = [line["n"] for line in lines]  # type: ignore[index]
        assert numbers == sorted(numbers)  # one compact JSON line per message, in order
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
        if broker_url.startswith("amqp"):
            assert Rabbit(broker_url.rsplit("/", 1)[1]).bindings_from(queue) == set()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await client.disconnect()


async def test_dump_reads_an_existing_queue_as_the_original_does(
    amqp_url: str, prefix: str
) -> None:
    queue = f"{prefix}.IN"
    client = get_client(amqp_url)
    await client.connect()
    await client.create_queue(QueueKind.IN, queue)
    await client.send_to(QueueKind.IN, queue, {"waiting": True})
    await client.flush()
    try:
        code, out, err = await run(
            str(BIN / "msgflo-dump-message"), "--broker", amqp_url, "--queue", queue
        )
        assert code == 0, err
        assert json.loads(out) == {"waiting": True}
    finally:
        await client.remove_queue(QueueKind.IN, queue)
        await client.disconnect()


async def test_unknown_names_fail_in_one_line_with_the_right_case(
    amqp_url: str, prefix: str
) -> None:
    queue = f"{prefix}.IN"
    client = get_client(amqp_url)
    await client.connect()
    await client.create_queue(QueueKind.IN, queue)
    try:
        send = str(BIN / "msgflo-send-message")
        code, _, err = await run(send, "--broker", amqp_url, "-q", f"{prefix}.in", "--json", "1")
        assert code == 1
        assert err.strip().splitlines() == [
            f"msgflo-send-message: queue '{prefix}.in' does not exist on {amqp_url.replace(':guest@', ':***@')}; "
            f"did you mean '{prefix}.IN'? (names are case-sensitive)"
        ]
        code, _, err = await run(
            str(BIN / "msgflo-dump-message"), "--broker", amqp_url, "-q", f"{prefix}.in"
        )
        assert code == 1
        assert "queue or exchange" in err and f"did you mean '{prefix}.IN'" in err
        # An exchange that exists but feeds no queue drops the message: also reported.
        await client.create_queue(QueueKind.OUT, f"{prefix}.OUT")
        code, _, err = await run(
            send, "--broker", amqp_url, "-q", f"{prefix}.OUT", "--json", "1", "--outqueue"
        )
        assert code == 1
        assert f"no queue is bound to exchange '{prefix}.OUT'" in err
        assert len(err.strip().splitlines()) == 1
        assert await Rabbit(amqp_url.rsplit("/", 1)[1]).ready(queue) == 0
    finally:
        await client.remove_queue(QueueKind.IN, queue)
        await client.disconnect()


async def test_the_broker_is_printed_unless_given(broker_url: str, prefix: str) -> None:
    send = str(BIN / "msgflo-send-message")
    secret = broker_url.replace("guest:guest@", "guest:s3cret@")
    env = {**os.environ, "MSGFLO_BROKER": secret}
    env.pop("CLOUDAMQP_URL", None)
    argv = (send, "--queue", f"{prefix}.IN", "--json", "1", "--connect-timeout", "5")
    _, _, err = await run(*argv, env=env)
    shown = secret.replace(":s3cret@", ":***@")
    assert f"msgflo-send-message: using broker {shown} (from MSGFLO_BROKER)" in err
    assert "s3cret" not in err
    _, _, err = await run(*argv, "--broker", broker_url, env=env)
    assert "using broker" not in err
    env.pop("MSGFLO_BROKER")
    _, _, err = await run(*argv, env=env)
    assert "using broker amqp://localhost (the default" in err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_the_tools_reach_msgflos_embedded_broker_on_a_fixed_port(
    tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("MSGFLO_EMBEDDED_PORT", str(port))
    async with run_msgflo(tmp_path, "--port", "0", broker=None) as running:
        match = await running.wait_line(r"msgflo: for other commands: export MSGFLO_BROKER=(\S+)")
        assert match[1] == f"mqtt://127.0.0.1:{port}"
        env = {**os.environ, "MSGFLO_BROKER": match[1]}
        topic = f"{prefix}.OUT"
        dump = asyncio.create_task(
            run(str(BIN / "msgflo-dump-message"), "-q", topic, "--timeout", "30", env=env)
        )
        for _ in range(40):  # the dumper subscribes at its own pace; MQTT keeps nothing
            code, _, err = await run(
                str(BIN / "msgflo-send-message"), "-q", topic, "--json", '"hi"', env=env
            )
            assert code == 0, err
            assert f"using broker mqtt://127.0.0.1:{port} (from MSGFLO_BROKER)" in err
            if (await asyncio.wait([dump], timeout=0.2))[0]:
                break
        code, out, err = await dump
        assert code == 0, err
        assert json.loads(out) == "hi"
        assert await running.stop() == 0
