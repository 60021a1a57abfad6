"""Our ``msgflo`` runs a graph that mixes a msgflo-nodejs participant with Python ones.

The ``.js`` component is started by the library's default handler
(``msgflo-nodejs --name #ROLE #FILENAME``), exactly as in a Node msgflo project.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from msgflo.transport import QueueKind
from tests.external import interop_helpers
from tests.external.interop_helpers import (
    PY_TAG,
    LazyVhost,
    broker_for,
    component_dir,
    require_node,
    use_node_env,
)
from tests.integration.run_helpers import Sink, run_msgflo

SWITCH = """
component: home/Switch
label: A wall switch that publishes its state
outports:
  state:
    queue: /switches/#ROLE/state
    type: boolean
"""

vhost = interop_helpers.vhost
pytestmark = [pytest.mark.broker, pytest.mark.external]


@pytest.mark.parametrize("kind", ["mqtt", "amqp"], ids=["mosquitto", "rabbitmq"])
async def test_data_flows_through_python_and_node_participants(
    vhost: LazyVhost, tmp_path: Path, prefix: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_node()
    use_node_env(monkeypatch)
    a, n, b = f"{prefix}a", f"{prefix}n", f"{prefix}b"
    component_dir(tmp_path, {"PyTag": PY_TAG}, node=("NodeRepeat",))
    (tmp_path / "graph.fbp").write_text(
        f"'hello' -> IN {a}(PyTag) OUT -> IN {n}(NodeRepeat) OUT -> IN {b}(PyTag)\n"
    )
    with broker_for(kind, vhost) as url:
        sink = await Sink.on(url, f"{b}.OUT")  # bound before the IIP can flow
        async with run_msgflo(tmp_path, "--graph", "graph.fbp", broker=url) as running:
            try:
                await running.wait_line(r"^msgflo ready: graph\.fbp with 3 nodes")
                await running.wait_line(rf"{n}: participant {n}-\S+ \(NodeRepeat\) discovered")
                assert await sink.get() == {"value": "hello", "path": ["python", "node", "python"]}
                await sink.broker.send_to(QueueKind.IN, f"{a}.IN", {"path": ["test"]})
                assert await sink.get() == {"path": ["test", "python", "node", "python"]}
            finally:
                await sink.close()
            assert await running.stop() == 0
        assert [line for line in running.lines if "Traceback" in line] == []


@pytest.mark.parametrize("kind", ["mqtt", "amqp"], ids=["mosquitto", "rabbitmq"])
async def test_foreign_yml_component_is_announced_by_msgflo_register_and_wired(
    vhost: LazyVhost, tmp_path: Path, prefix: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``.yml`` file in the component directory: the default handler runs
    ``msgflo-register --role #ROLE:#FILENAME``, and the device's own topic is wired."""
    use_node_env(monkeypatch)
    switch, b = f"{prefix}switch", f"{prefix}b"
    directory = component_dir(tmp_path, {"PyTag": PY_TAG})
    (directory / "Switch.yml").write_text(SWITCH)
    (tmp_path / "graph.fbp").write_text(f"{switch}(Switch) STATE -> IN {b}(PyTag)\n")
    with broker_for(kind, vhost) as url:
        async with run_msgflo(tmp_path, "--graph", "graph.fbp", broker=url) as running:
            sink = await Sink.on(url, f"{b}.OUT")
            try:
                await running.wait_line(
                    rf"wired edge {switch}\.state -> {b}\.in: .*/switches/{switch}/state"
                )
                # Nobody declared the device's exchange on RabbitMQ: the coordinator's binding
                # made it (the original crashed with 404 NOT_FOUND here).
                await sink.broker.send_to(QueueKind.OUT, f"/switches/{switch}/state", True)
                assert await sink.get() == {"value": True, "path": ["python"]}
            finally:
                await sink.close()
            assert await running.stop() == 0
