"""The participant process contract when the broker goes away."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from msgflo.testing.proxy import FaultProxy
from tests.brokers import require_broker
from tests.integration.processes import BIN, running

pytestmark = pytest.mark.broker
LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy"


@pytest.mark.parametrize(
    ("port", "scheme", "userinfo"),
    [(1883, "mqtt", ""), (5672, "amqp", "guest:guest")],
    ids=["mosquitto", "rabbitmq"],
)
async def test_sigterm_during_a_broker_outage_still_ends_the_process(
    port: int, scheme: str, userinfo: str, prefix: str
) -> None:
    require_broker(port, scheme)
    async with FaultProxy("127.0.0.1", port) as proxy:
        argv = [str(BIN / "msgflo-python"), str(LEGACY / "Repeat.py"), f"{prefix}r"]
        env = {"MSGFLO_SHUTDOWN_GRACE": "1"}
        async with running(argv, proxy.url(scheme, userinfo), env=env) as (proc, _):
            proxy.block()
            await asyncio.sleep(0.3)  # let it notice: a participant reconnecting, not starting
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_sigterm_ends_msgflo_register_during_a_broker_outage() -> None:
    require_broker(1883, "Mosquitto")
    declaration = (
        Path(__file__).parent.parent / "unit" / "fixtures" / "library" / "toggleswitch.yml"
    )
    async with FaultProxy("127.0.0.1", 1883) as proxy:
        argv = [
            str(BIN / "msgflo-register"),
            "--role",
            f"regterm:{declaration}",
            "--interval",
            "0.5",  # a round every 0.23 s: one is under way while the broker is away
        ]
        env = {"MSGFLO_SHUTDOWN_GRACE": "1"}
        async with running(argv, proxy.url("mqtt"), env=env) as (proc, _):
            proxy.block()
            await asyncio.sleep(0.6)
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 10) == 0
