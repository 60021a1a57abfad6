"""The demo's participants tested with the msgflo pytest plugin (installed with msgflo):
`pytest examples/demo` runs these on the memory broker, `--msgflo-broker URL` on a real one."""

from __future__ import annotations

from pathlib import Path

from participants.Upper import Upper

from msgflo.library import Library
from msgflo.testing.pytest_plugin import NetworkFactory, ParticipantFactory

HERE = Path(__file__).parent


async def test_upper_shouts(msgflo_participant: ParticipantFactory) -> None:
    async with msgflo_participant(Upper) as upper:
        await upper.send("in", "flow based")
        assert await upper.receive("out") == "FLOW BASED"
        assert upper.acked["in"] == ["flow based"]


async def test_shout_reaches_show(msgflo_network: NetworkFactory) -> None:
    graph = {
        "processes": {"shout": {"component": "Upper"}, "show": {"component": "Show"}},
        "connections": [
            {"src": {"process": "shout", "port": "out"}, "tgt": {"process": "show", "port": "text"}}
        ],
        "inports": {"text": {"process": "shout", "port": "in"}},
        "outports": {"shown": {"process": "show", "port": "out"}},
    }
    async with msgflo_network(graph, library=Library.load(None, None, root=HERE)) as net:
        await net.send("text", "hello")
        assert await net.receive("shown") == {"text": "HELLO"}
