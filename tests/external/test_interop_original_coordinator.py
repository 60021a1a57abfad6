"""Our participants in a network run by the ORIGINAL Node tools (msgflo 0.12.3).

The original ``msgflo`` and ``msgflo-setup`` start our participants through their default
``.py`` handler (``msgflo-python #FILENAME #ROLE``), learn them from discovery and wire them.
The original's bugs are worked around here, in the test setup, never in our product (the list is
in docs/compatibility.md): a library file must exist (the original crashes without one),
``--ping-interval 0`` would spin a 0 ms timer, children outlive the tool (it never stops them),
and commander's optional booleans would swallow a following argument.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msgflo.transport import QueueKind
from tests.external import interop_helpers
from tests.external.interop_helpers import (
    NODE_BIN,
    PY_TAG,
    LazyVhost,
    broker_for,
    component_dir,
    fed,
    group,
    node_env,
    require_node,
)
from tests.integration.run_helpers import Sink

vhost = interop_helpers.vhost
pytestmark = [pytest.mark.broker, pytest.mark.external]

LEGACY_REPEAT = (Path(__file__).parents[1] / "fixtures" / "legacy" / "Repeat.py").read_text()
KINDS = pytest.mark.parametrize("kind", ["mqtt", "amqp"], ids=["mosquitto", "rabbitmq"])


def project(root: Path, graph: str) -> Path:
    """A Node msgflo project: package.json as the library, participants/ as component dir."""
    component_dir(root, {"PyTag": PY_TAG, "LegacyRepeat": LEGACY_REPEAT}, node=("NodeRepeat",))
    (root / "package.json").write_text(json.dumps({"private": True, "msgflo": {}}))
    (root / "graph.fbp").write_text(graph)
    return root


@KINDS
async def test_original_msgflo_discovers_wires_and_feeds_our_participants(
    vhost: LazyVhost, tmp_path: Path, prefix: str, kind: str
) -> None:
    require_node()
    a, legacy, n, b = (f"{prefix}{x}" for x in ("a", "l", "n", "b"))
    project(
        tmp_path,
        f"{a}(PyTag) OUT -> IN {legacy}(LegacyRepeat)\n"
        f"{legacy} OUT -> IN {n}(NodeRepeat) OUT -> IN {b}(PyTag)\n"
        # The IIP goes to the last node: the original sends IIPs as soon as the target is
        # discovered, in parallel with wiring, so output of a first node may find no binding
        # yet (msgflo#125); the sink is bound before the original starts.
        f"'hello' -> IN {b}\n",
    )
    with broker_for(kind, vhost) as plain:
        url = fed(plain)
        sink = await Sink.on(url, f"{b}.OUT")  # before the IIP can flow
        try:
            argv = [
                str(NODE_BIN / "msgflo"), "--graph", "graph.fbp", "--broker", url,
                "--library", "package.json", "--componentdir", "participants",
                "--port", "0", "--ping-interval", "3600", "--wait-timeout", "20",
            ]  # fmt: skip
            async with group(argv, tmp_path, node_env()) as original:
                await original.wait_line(r"^msgflo started on ws://")
                assert await sink.get() == {"value": "hello", "path": ["python"]}
                await sink.broker.send_to(QueueKind.IN, f"{a}.IN", {"n": 2})
                assert await sink.get() == {"n": 2, "path": ["python", "node", "python"]}
                assert original.process.returncode is None
        finally:
            await sink.close()


@KINDS
async def test_original_msgflo_setup_starts_and_binds_our_participants(
    vhost: LazyVhost, tmp_path: Path, prefix: str, kind: str
) -> None:
    """Static mode on RabbitMQ (assumes ``role.PORT`` queues, which ours have by default);
    ``--discover`` on Mosquitto, where the legacy participant's ``role/port`` queues are learnt
    from discovery and the bindings need ``--forever`` (a live in-process Binder)."""
    require_node()
    a, legacy, n, b = (f"{prefix}{x}" for x in ("a", "l", "n", "b"))
    if kind == "amqp":
        graph = f"{a}(PyTag) OUT -> IN {n}(NodeRepeat) OUT -> IN {b}(PyTag)\n"
        mode = ["--participants"]
    else:
        graph = (
            f"{a}(PyTag) OUT -> IN {legacy}(LegacyRepeat)\n"
            f"{legacy} OUT -> IN {n}(NodeRepeat) OUT -> IN {b}(PyTag)\n"
        )
        mode = ["--timeout", "20", "--participants", "--discover", "--forever"]
    project(tmp_path, graph)
    env = {**node_env(), "MSGFLO_DISCOVERY_PERIOD": "1"}  # --discover subscribes late (#94)
    with broker_for(kind, vhost) as plain:
        url = fed(plain)
        sink = await Sink.on(url, f"{b}.OUT")
        try:
            argv = [
                str(NODE_BIN / "msgflo-setup"), "graph.fbp", "--broker", url,
                "--library", "package.json", "--componentdir", "participants", *mode,
            ]  # fmt: skip
            async with group(argv, tmp_path, env) as setup:
                await setup.wait_line(r"^Set up bindings:")
                await setup.wait_line(rf"PUBSUB: \t {n}\.OUT -> {b}\.IN")
                await sink.broker.send_to(QueueKind.IN, f"{a}.IN", "x")
                assert await sink.get() == {"value": "x", "path": ["python", "node", "python"]}
        finally:
            await sink.close()
