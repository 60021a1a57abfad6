"""The original's cross-language scenario (msgflo spec/heterogenous.coffee) against our participant.

Once reproduced in pytest, once by running the original spec file itself (shipped in the npm
package msgflo 0.12.3) with its mocha/coffee setup, on Mosquitto and on RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

import msgflo
from msgflo.broker import embedded_broker
from msgflo.transport import Binding, QueueKind
from tests.external import interop_helpers
from tests.external.interop_helpers import (
    NODE_BIN,
    NODE_COMPONENTS,
    NODE_DIR,
    PY_BIN,
    LazyVhost,
    broker_for,
    fed,
    next_item,
    node_env,
    require_node,
    watcher,
)
from tests.integration.processes import running

vhost = interop_helpers.vhost
KINDS = pytest.mark.parametrize("kind", ["mqtt", "amqp"], ids=["mosquitto", "rabbitmq"])
DISCOVERY_KEYS = {"id", "icon", "role", "component", "label", "inports", "outports"}

REPEAT = """
import msgflo


class PyRepeat(msgflo.Participant):
    component = "PyRepeat"

    async def process(self, port, msg):
        await self.send("out", msg.data)
"""


@pytest.mark.broker
@KINDS
async def test_discovery_keys_and_repeat_through_a_pubsub_binding(
    vhost: LazyVhost, tmp_path: Path, prefix: str, kind: str
) -> None:
    """The last two checks of the original's heterogenous spec (the discovery message's keys;
    a message comes back unchanged), as the spec does them, with the test's own receive queue
    bound ``pubsub`` to the participant's ``out`` queue."""
    source = tmp_path / "repeat.py"
    source.write_text(REPEAT)
    role = f"{prefix}repeat"
    with broker_for(kind, vhost) as url:
        async with watcher(url) as watch:
            await watch.watch_discovery(role)
            argv = [str(PY_BIN / "msgflo-python"), str(source), role]
            async with running(argv, url):
                definition = await next_item(watch.discovered)
                assert set(definition) == DISCOVERY_KEYS
                assert definition["component"] == "PyRepeat"
                assert definition["label"] == "", "no docstring: no label (not the base class's)"
                [inport] = [p for p in definition["inports"] if p["id"] == "in"]
                [outport] = [p for p in definition["outports"] if p["id"] == "out"]
                receive = f"{prefix}test.RECEIVE"
                got = await watch.read(receive)
                await watch.broker.add_binding(Binding(outport["queue"], receive))
                await watch.send(inport["queue"], {"bar": "foo"})
                assert await next_item(got) == {"bar": "foo"}
                if kind == "amqp":
                    await watch.broker.remove_queue(QueueKind.IN, receive)


def test_label_defaults_to_the_class_docstring_only() -> None:
    """Regression: a class without a docstring announced Participant's own docstring."""

    class Plain(msgflo.Participant):
        pass

    class Documented(msgflo.Participant):
        """Says what it does.

        More detail."""

    assert Plain("p").definition["label"] == ""
    assert Documented("d").definition["label"] == "Says what it does."


@pytest.mark.broker
@pytest.mark.external
@KINDS
async def test_original_heterogenous_spec_passes_against_our_participant(
    vhost: LazyVhost, tmp_path: Path, prefix: str, kind: str
) -> None:
    """The spec starts the command itself (stderr output before the first stdout line counts as a
    failed start), waits for a discovery of component ``SpecRepeat``, checks the exact key set, then
    sends ``{bar: 'foo'}`` and expects it back through a pubsub binding to ``test.RECEIVE``."""
    require_node()
    source = tmp_path / "repeat.py"
    # The spec takes the first discovery of its component name: one of its own, so a stale
    # announcement of the other test in this module's vhost cannot stand in.
    source.write_text(REPEAT.replace("PyRepeat", "SpecRepeat"))
    async with contextlib.AsyncExitStack() as stack:
        # The spec takes every discovery on `fbp` that arrives while it waits as its own: on
        # MQTT, a broker of its own keeps other tests' announcements away.
        url = (
            await stack.enter_async_context(embedded_broker())
            if kind == "mqtt"
            else fed(stack.enter_context(broker_for(kind, vhost)))
        )
        env = {
            **node_env(),
            "HETEROGENOUS_BROKER": url,
            "HETEROGENOUS_COMPONENT": "SpecRepeat",
            "HETEROGENOUS_COMMAND": json.dumps(
                [str(PY_BIN / "msgflo-python"), str(source), f"{prefix}repeat"]
            ),
        }
        process = await asyncio.create_subprocess_exec(
            str(NODE_BIN / "mocha"), "--require", "coffeescript/register", "--reporter", "spec",
            "--exit", str(NODE_COMPONENTS / "heterogenous-ours.js"),
            cwd=NODE_DIR, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, _ = await process.communicate()
    report = out.decode(errors="replace")
    assert process.returncode == 0, report
    assert "2 passing" in report, report
    assert "sends definition on fbp queue" in report
    assert "repeats the same data on outport queue" in report
