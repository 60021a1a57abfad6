"""``msgflo --autoscale`` end to end: real participants, a queued load on RabbitMQ, the scaler's
lines as a user reads them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from msgflo.transport import QueueDepth, QueueKind, get_broker
from tests.brokers import MOSQUITTO, RABBITMQ, require_broker
from tests.integration.run_helpers import Msgflo, Sink, run_msgflo

pytestmark = [pytest.mark.broker, pytest.mark.slow]

AMQP = f"{RABBITMQ}?prefetch=1"
SLOW = """
import asyncio

import msgflo


class Slow(msgflo.Participant):
    component = "Slow"
    inports = {"in": "any"}
    outports = {"out": "any"}

    async def process(self, port, msg):
        await asyncio.sleep(0.05)
        await self.send("out", msg.data)
"""
FIRST_ONE_LIVES = """
import os
import sys

try:
    os.close(os.open("lonely.lock", os.O_CREAT | os.O_EXCL))
except FileExistsError:
    sys.exit("not the first copy to take the lock")
"""
SCALING = """\
"*": {{pollinterval: 0.5, history: 1.5, processing: 0.05}}
{role}: {{min: 1, max: {max}, deadline: 2}}
"""
DECISION = re.compile(r"msgflo: \S+: scale to (\d+) \(queued")


def project(tmp_path: Path, role: str, participant: str, maximum: int) -> Path:
    (tmp_path / "participants").mkdir()
    (tmp_path / "participants" / "Slow.py").write_text(participant)
    (tmp_path / "fbp-config.json").write_text("{}")
    (tmp_path / "graph.fbp").write_text(f"INPORT={role}.IN:IN\n{role}(Slow)\n")
    (tmp_path / "scale.guv.yaml").write_text(SCALING.format(role=role, max=maximum))
    return tmp_path


@pytest.fixture
async def load(prefix: str) -> AsyncIterator[tuple[str, Sink]]:
    """``prefix`` as the role, its outputs followed, its inqueue declared; queues removed after."""
    require_broker(5672, "RabbitMQ")
    sink = await Sink.on(AMQP, f"{prefix}.OUT")
    await sink.broker.create_queue(QueueKind.IN, f"{prefix}.IN")
    yield prefix, sink
    await sink.broker.unsubscribe_from_queue(f"{prefix}.OUT.observer")
    for queue in (f"{prefix}.IN", f"{prefix}.OUT.observer"):
        await sink.broker.remove_queue(QueueKind.IN, queue)
    await sink.broker.remove_queue(QueueKind.OUT, f"{prefix}.OUT")
    await sink.close()


async def queue_up(sink: Sink, queue: str, count: int) -> None:
    for n in range(count):
        await sink.broker.send_to(QueueKind.IN, queue, n)
    await sink.broker.flush()


async def all_out(sink: Sink, count: int) -> set[int]:
    return {await sink.get(30) for _ in range(count)}


def targets(running: Msgflo) -> list[int]:
    return [int(m[1]) for line in running.lines if (m := DECISION.search(line))]


async def test_a_queued_role_is_scaled_up_then_back_to_min(
    tmp_path: Path, load: tuple[str, Sink]
) -> None:
    role, sink = load
    await queue_up(sink, f"{role}.IN", 150)
    args = ["--graph", "graph.fbp", "--port", "0", "--autoscale", "scale.guv.yaml"]
    async with run_msgflo(project(tmp_path, role, SLOW, 4), *args, broker=AMQP) as running:
        up = await running.wait_line(rf"msgflo: {role}: scale to 4 \(queued (\d+), workers 1, ")
        assert 100 <= int(up[1]) <= 150, "the first decision sees the load"
        assert await all_out(sink, 150) == set(range(150))
        await running.wait_line(rf"msgflo: {role}: participant \S+ \(Slow\) discovered, 4 running")
        await running.wait_line(
            rf"msgflo: {role}: scale to 1 \(queued 0, workers \d(, boot [\d.]+ s)?, estimate 1, "
            r"recent max 1\)"
        )
        assert targets(running)[0] == 4 and targets(running)[-1] == 1
        assert set(running.pids()) == {role, f"{role}[2]", f"{role}[3]", f"{role}[4]"}
        assert await running.stop() == 0


async def test_copies_that_keep_crashing_do_not_make_the_scaler_oscillate(
    tmp_path: Path, load: tuple[str, Sink]
) -> None:
    role, sink = load
    await queue_up(sink, f"{role}.IN", 100)
    args = ["--graph", "graph.fbp", "--port", "0", "--autoscale", "scale.guv.yaml"]
    args += ["--max-restarts", "1"]
    participant = FIRST_ONE_LIVES + SLOW
    async with run_msgflo(project(tmp_path, role, participant, 3), *args, broker=AMQP) as running:
        await running.wait_line(rf"msgflo: {role}: scale to 3 \(queued")
        assert await all_out(sink, 100) == set(range(100)), "the one healthy copy does the work"
        await running.wait_line(rf"msgflo: {role}: scale to 1 \(queued")
        given_up = [line for line in running.lines if "giving up" in line]
        assert len(given_up) == 2 and all(
            "not the first copy to take the lock" in line for line in given_up
        )
        steps = targets(running)
        assert steps[0] == 3 and steps == sorted(steps, reverse=True), "up once, then only down"
        # whichever copy takes the lock first lives: it is the one never restarted
        kept = [label for label, pids in running.pids().items() if len(pids) == 1]
        assert len(kept) == 1, "the healthy copy is kept, never restarted"
        assert sum(len(pids) for pids in running.pids().values()) == 1 + 2 * 2
        assert await running.stop() == 0


async def test_without_a_countable_queue_the_role_keeps_its_count_with_a_warning(
    tmp_path: Path, prefix: str
) -> None:
    require_broker(1883, "Mosquitto")
    args = ["--graph", "graph.fbp", "--port", "0", "--autoscale", "scale.guv.yaml"]
    async with run_msgflo(project(tmp_path, prefix, SLOW, 4), *args, broker=MOSQUITTO) as running:
        warning = await running.wait_line(r"msgflo: warning: .*cannot count the messages.*")
        assert f"queued for {prefix}.IN; {prefix} keeps 1 instance(s), no autoscaling" in warning[0]
        await asyncio.sleep(1.5)
        assert not targets(running) and list(running.pids()) == [prefix]
        assert await running.stop() == 0


async def test_amqp_queue_depth_is_the_ready_count(prefix: str) -> None:
    require_broker(5672, "RabbitMQ")
    broker = get_broker(RABBITMQ)
    await broker.connect()
    try:
        assert await broker.queue_depth(f"{prefix}.missing") is None
        await broker.create_queue(QueueKind.IN, f"{prefix}.IN")
        for n in range(7):
            await broker.send_to(QueueKind.IN, f"{prefix}.IN", n)
        await broker.flush()
        assert await broker.queue_depth(f"{prefix}.IN") == QueueDepth(7, 0)
    finally:
        await broker.remove_queue(QueueKind.IN, f"{prefix}.IN")
        await broker.disconnect()
