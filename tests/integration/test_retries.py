"""Retries before dead-lettering, without holding the consumer, on every broker; and a poison
message that kills its process, dead-lettered after N deliveries on RabbitMQ."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

import msgflo
import msgflo.testing
from msgflo.retry import PolicyError, RetryPolicy
from msgflo.transport import Binding, BindingType, Message, QueueKind, get_broker
from tests.brokers import RABBITMQ, require_broker, url_for
from tests.integration.processes import BIN, running

BROKERS = [
    pytest.param("memory", id="memory"),
    pytest.param("mqtt", id="mosquitto", marks=pytest.mark.broker),
    pytest.param("amqp", id="rabbitmq", marks=pytest.mark.broker),
]
WAIT = 10.0


class Flaky(msgflo.Participant):
    """Fails each message until its ``ok_at`` try; tells which try it was."""

    component = "test/Flaky"
    inports = {"in": {"type": "object", "retry": {"attempts": 3, "backoff": 0.2}}}
    outports = {"out": "object"}

    async def process(self, port: str, msg: Message) -> None:
        if msg.attempt < msg.data["ok_at"]:
            raise RuntimeError(f"not yet ({msg.attempt})")
        await self.send("out", {**msg.data, "attempt": msg.attempt})


@pytest.fixture(params=BROKERS)
def url(request: pytest.FixtureRequest) -> str:
    return url_for(request.param, "retry")


async def test_a_retried_message_succeeds_while_others_pass_it(url: str, prefix: str) -> None:
    async with msgflo.testing.participant(Flaky, f"{prefix}f", broker=url) as p:
        await p.send("in", {"n": 1, "ok_at": 3})
        await p.send("in", {"n": 2, "ok_at": 1})
        first = await p.receive("out")
        assert first == {"n": 2, "ok_at": 1, "attempt": 1}, "the consumer is not held"
        assert await p.receive("out", timeout=WAIT) == {"n": 1, "ok_at": 3, "attempt": 3}
        assert p.nacked.get("in", []) == []


async def test_attempts_run_out_then_the_message_is_dead_lettered(url: str, prefix: str) -> None:
    async with msgflo.testing.participant(Flaky, f"{prefix}x", broker=url) as p:
        await p.send("in", {"n": 3, "ok_at": 99})
        assert await p.receive_dead("in", timeout=WAIT) == {"n": 3, "ok_at": 99}
        assert p.pending("out") == 0


async def test_the_last_reason_counts_the_attempts(prefix: str) -> None:
    url = f"memory://{prefix}"
    broker = get_broker(url)
    await broker.connect()
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def keep(message: Message) -> None:
        got.put_nowait(message)
        await broker.ack_message(message)

    await broker.create_queue(QueueKind.IN, "recover")
    await broker.subscribe_to_queue("recover", keep)
    await broker.add_binding(Binding("", "r.IN", BindingType.ROUNDROBIN, "recover"))
    async with msgflo.testing.participant(Flaky, "r", broker=url) as p:
        await p.send("in", {"ok_at": 99})
        dead = await asyncio.wait_for(got.get(), WAIT)
    await broker.disconnect()
    assert dead.reason is not None
    assert dead.reason["attempt"] == 3 and dead.reason["error"] == "not yet (3)"


@pytest.mark.parametrize(
    ("retry", "problem"),
    [
        ({"attempts": 0}, "attempts must be a whole number ≥ 1"),
        ({"backoff": -1}, "backoff must be seconds ≥ 0"),
        ({"tries": 2}, "unknown field(s) tries"),
        (3, "must be a mapping"),
    ],
)
def test_a_bad_policy_is_one_line_naming_the_port(retry: Any, problem: str) -> None:
    class Bad(msgflo.Participant):
        inports = {"in": {"retry": retry}}

    with pytest.raises(PolicyError) as raised:
        Bad("bad")
    assert str(raised.value).startswith("bad: inport 'in': retry")
    assert problem in str(raised.value)


def test_backoff_doubles() -> None:
    policy = RetryPolicy(attempts=4, backoff=0.5)
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


POISON = """
import os
import msgflo


class Victim(msgflo.Participant):
    inports = {"in": {"retry": {"deliveries": 2}}}

    async def process(self, port, msg):
        if msg.data == "poison":
            os._exit(3)  # no exception: the process dies with the message unacked
        await self.send("out", msg.data)
"""


@pytest.mark.broker
async def test_a_message_that_kills_the_process_is_dead_lettered_after_n_deliveries(
    prefix: str, tmp_path: Path
) -> None:
    require_broker(5672, "RabbitMQ")
    source = tmp_path / "Victim.py"
    source.write_text(POISON)
    role = f"{prefix}v"
    broker = get_broker(RABBITMQ)
    await broker.connect()
    dead: asyncio.Queue[Message] = asyncio.Queue()
    out: asyncio.Queue[Any] = asyncio.Queue()

    async def keep_dead(message: Message) -> None:
        dead.put_nowait(message)
        await broker.ack_message(message)

    async def keep_out(message: Message) -> None:
        out.put_nowait(message.data)
        await broker.ack_message(message)

    try:
        for queue, keep in ((f"{prefix}.dead", keep_dead), (f"{role}.OUT", keep_out)):
            await broker.create_queue(QueueKind.IN, queue)
            await broker.subscribe_to_queue(queue, keep)
        await broker.create_queue(QueueKind.IN, f"{role}.IN")
        await broker.add_binding(
            Binding("", f"{role}.IN", BindingType.ROUNDROBIN, f"{prefix}.dead")
        )
        await broker.send_to(QueueKind.IN, f"{role}.IN", "poison")
        argv = [str(BIN / "msgflo-python"), str(source), role]
        env = {"MSGFLO_STATE_DIR": str(tmp_path / "state")}
        for crash in (1, 2):  # deliveries 1 and 2 kill the process, before it says it is ready
            victim = await asyncio.create_subprocess_exec(
                *argv,
                env={**os.environ, "MSGFLO_BROKER": RABBITMQ, **env},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            assert await asyncio.wait_for(victim.wait(), WAIT) == 3, f"crash {crash}"
        async with running(argv, RABBITMQ, env=env) as (proc, _):
            message = await asyncio.wait_for(dead.get(), WAIT)
            assert message.data == "poison"
            assert message.reason is not None
            assert (message.reason["reason"], message.reason["attempt"]) == ("poison", 3)
            await broker.send_to(QueueKind.IN, f"{role}.IN", "fine")
            assert await asyncio.wait_for(out.get(), WAIT) == "fine"
            assert proc.returncode is None
    finally:
        for queue in (f"{prefix}.dead", f"{role}.OUT", f"{role}.IN"):
            await broker.remove_queue(QueueKind.IN, queue)
        await broker.disconnect()


async def test_msgflo_python_refuses_a_bad_policy_in_one_line(tmp_path: Path) -> None:
    source = tmp_path / "Bad.py"
    source.write_text(
        "import msgflo\n\n\nclass Bad(msgflo.Participant):\n"
        "    inports = {'in': {'retry': {'attempts': 0}}}\n\n"
        "    async def process(self, port, msg):\n        pass\n"
    )
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo-python"),
        str(source),
        "bad",
        "--broker",
        "memory://cli",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert err.decode().strip().splitlines() == [
        "msgflo-python: bad: inport 'in': retry: attempts must be a whole number ≥ 1, not 0"
    ]
