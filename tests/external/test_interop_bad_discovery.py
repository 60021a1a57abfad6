"""Foreign participants with malformed discovery messages, published raw on the real broker to a
running ``msgflo``: what can be used is used, the rest costs one warning naming the sender, and
the network goes on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from msgflo.transport import QueueKind, get_client
from tests.external import interop_helpers
from tests.external.interop_helpers import (
    PY_TAG,
    LazyVhost,
    broker_for,
    component_dir,
    use_node_env,
)
from tests.integration.run_helpers import Sink, run_msgflo

vhost = interop_helpers.vhost
pytestmark = [pytest.mark.broker]


def envelope(payload: Any) -> bytes:
    return json.dumps(
        {"protocol": "discovery", "command": "participant", "payload": payload}
    ).encode()


@pytest.mark.parametrize("kind", ["mqtt", "amqp"], ids=["mosquitto", "rabbitmq"])
async def test_malformed_discovery_is_used_or_warned_about_once_and_network_goes_on(
    vhost: LazyVhost, tmp_path: Path, prefix: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_node_env(monkeypatch)
    a, b, dev = f"{prefix}a", f"{prefix}b", f"{prefix}dev"
    dev_out = f"/{dev}/out"
    component_dir(tmp_path, {"PyTag": PY_TAG})
    (tmp_path / "graph.fbp").write_text(
        f"{a}(PyTag) OUT -> IN {b}(PyTag)\n{dev}(my/Device) OUT -> IN {b}\n"
    )
    # What MicroFlo's MQTT mount and other small devices send: no id, null strings, junk keys.
    usable = {
        "role": dev,
        "component": None,
        "label": None,
        "icon": None,
        "_": None,
        "inports": [],
        "outports": [{"id": "out", "type": None, "queue": dev_out, "_": None}],
    }
    bad_ports = {"id": f"{prefix}broken-1", "role": f"{prefix}broken", "inports": "in"}
    with broker_for(kind, vhost) as url:
        async with run_msgflo(tmp_path, "--graph", "graph.fbp", broker=url) as running:
            sink = await Sink.on(url, f"{b}.OUT")
            device = get_client(url)
            await device.connect()
            try:
                await running.wait_line(r"^msgflo ready: graph\.fbp with 3 nodes")
                await running.wait_line(rf"wired edge {a}\.out -> {b}\.in")
                start = len(running.lines)
                await device.create_queue(QueueKind.OUT, dev_out)
                for _ in range(2):  # a repeated bad announcement warns once
                    await device.send_discovery(envelope(bad_ports))
                    await device.send_discovery(b"\x00not json")
                    await device.send_discovery(envelope(["not", "an", "object"]))
                await device.send_discovery(envelope(usable))
                await running.wait_line(rf"{dev}: participant {dev} \({dev}\) discovered")
                await running.wait_line(rf"wired edge {dev}\.out -> {b}\.in")
                await device.send_to(QueueKind.OUT, dev_out, "from the device")
                assert await sink.get() == {"value": "from the device", "path": ["python"]}
                await sink.broker.send_to(QueueKind.IN, f"{a}.IN", "still")
                assert await sink.get() == {"value": "still", "path": ["python", "python"]}
                warnings = [line for line in running.lines[start:] if "warning:" in line]
                assert len(warnings) == 3, warnings
                assert any(f"{prefix}broken-1" in w and "inports" in w for w in warnings)
                assert sum("an unnamed sender" in w for w in warnings) == 2
                assert running.process.returncode is None
            finally:
                await device.disconnect()
                await sink.close()
            assert await running.stop() == 0
        assert not any("Traceback" in line for line in running.lines)
