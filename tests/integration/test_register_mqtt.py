"""msgflo-register as a process against Mosquitto: the original's register spec, and a real exit."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from msgflo.transport import Message, get_broker
from tests.brokers import MOSQUITTO, require_broker

SWITCH = Path(__file__).parent.parent / "unit" / "fixtures" / "library" / "toggleswitch.yml"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.broker


async def test_register_no_forever_sends_discovery_on_fbp_and_exits_zero() -> None:
    require_broker(1883, "Mosquitto")
    role = f"switch-{uuid.uuid4().hex[:8]}"
    observer = get_broker(MOSQUITTO)
    await observer.connect()
    seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def keep(message: Message) -> None:
        data = message.data
        if isinstance(data, dict) and data.get("payload", {}).get("role") == role:
            seen.put_nowait(data)

    try:
        await observer.subscribe_participant_change(keep)
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "msgflo-register"),
            "--no-forever",
            "--role",
            f"{role}:{SWITCH}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "MSGFLO_BROKER": MOSQUITTO},
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, stderr.decode()
        assert stdout.decode() == f"Sent discovery message for {role}\n"
        envelope = await asyncio.wait_for(seen.get(), 10)
    finally:
        await observer.disconnect()
    assert set(envelope) == {"protocol", "command", "payload"}
    assert (envelope["protocol"], envelope["command"]) == ("discovery", "participant")
    payload = envelope["payload"]
    assert {"id", "role", "component", "inports", "outports", "label", "icon"} <= set(payload)
    assert (payload["id"], payload["component"]) == (role, "my/ToggleSwitch")
    [outport] = payload["outports"]
    assert {"id", "queue", "type"} <= set(outport)
    assert outport["queue"] == f"/myswitch/{role}/status"
