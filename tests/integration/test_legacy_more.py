"""More msgflo-python 0.4 code running unchanged: the other message views, several participants
in one process, and legacy ``role/port`` queues wired by our coordinator in a graph."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from msgflo.transport import QueueKind
from tests.integration import test_legacy_participants as legacy
from tests.integration.processes import BIN, running
from tests.integration.run_helpers import UPPER, Sink, run_msgflo
from tests.integration.test_legacy_participants import LEGACY, Observer, next_item

# The same broker parameters (Mosquitto, RabbitMQ) and observer as the first legacy set.
broker_url = legacy.broker_url
observer = legacy.observer

pytestmark = [pytest.mark.broker, pytest.mark.slow]


async def test_json_and_buffer_views_of_a_message(
    broker_url: str, observer: Observer, prefix: str
) -> None:
    role = f"{prefix}bytes"
    out = await observer.listen(f"{role}/out")
    async with running([str(BIN / "msgflo-python"), str(LEGACY / "Bytes.py"), role], broker_url):
        await observer.broker.send_raw(QueueKind.IN, f"{role}/in", b'{"a": [1, 2]}')
        assert await next_item(out) == {"json": {"a": [1, 2]}, "size": 13, "raw": '{"a": [1, 2]}'}
        await observer.broker.send_raw(QueueKind.IN, f"{role}/in", "é".encode())
        assert await next_item(out) == {"json": "é", "size": 2, "raw": "é"}


async def test_run_with_a_list_of_participants_serves_them_all_from_one_process(
    broker_url: str, observer: Observer, prefix: str
) -> None:
    await observer.watch_discovery(f"{prefix}negate")
    doubled = await observer.listen(f"{prefix}double/out")
    negated = await observer.listen(f"{prefix}negate/out")
    argv = [sys.executable, str(LEGACY / "Pair.py"), prefix]
    async with running(argv, broker_url) as (proc, ready):
        assert ready.startswith(f"{prefix}double(Double) ready on ")
        assert proc.stdout is not None
        second = (await proc.stdout.readline()).decode()
        assert second.startswith(f"{prefix}negate(Negate) ready on ")
        assert (await next_item(observer.discovered))["payload"]["component"] == "Negate"
        await observer.send(f"{prefix}double/in", 21)
        await observer.send(f"{prefix}negate/in", 5)
        assert await next_item(doubled) == 42
        assert await next_item(negated) == -5


async def test_coordinator_wires_legacy_role_slash_port_queues_in_a_graph(
    broker_url: str, tmp_path: Path, prefix: str
) -> None:
    """The graph says ``OUT``/``IN``; the legacy participant's queues are ``role/out`` and
    ``role/in``: the coordinator takes the real names from discovery."""
    (tmp_path / "participants").mkdir()
    shutil.copy(LEGACY / "Repeat.py", tmp_path / "participants" / "LegacyRepeat.py")
    (tmp_path / "participants" / "Upper.py").write_text(UPPER)
    a, legacy, b = f"{prefix}a", f"{prefix}legacy", f"{prefix}b"
    (tmp_path / "graph.fbp").write_text(
        f"'hi' -> IN {a}(Upper) OUT -> IN {legacy}(LegacyRepeat) OUT -> IN {b}(Upper)\n"
    )
    async with run_msgflo(tmp_path, "--graph", "graph.fbp", broker=broker_url) as msgflo:
        sink = await Sink.on(broker_url, f"{b}.OUT")
        try:
            await msgflo.wait_line(
                rf"wired edge {a}\.out -> {legacy}\.in: .*{a}\.OUT -> {legacy}/in"
            )
            await msgflo.wait_line(
                rf"wired edge {legacy}\.out -> {b}\.in: .*{legacy}/out -> {b}\.IN"
            )
            assert await sink.get() == "HI"
            await sink.broker.send_to(QueueKind.IN, f"{legacy}/in", "direct")
            assert await sink.get() == "DIRECT"
        finally:
            await sink.close()
        assert await msgflo.stop() == 0
