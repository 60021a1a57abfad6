"""The pytest plugin as a user meets it: a project of their own with participants, a graph and
an fbp-spec suite, tested with nothing but `pytest` (the plugin comes with the package)."""

from __future__ import annotations

import json
import textwrap

import pytest

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.slow]

UPPER = """
import msgflo


class Upper(msgflo.Participant):
    component = "app/Upper"
    inports = {"in": "string"}
    outports = {"out": "string"}

    async def process(self, port, msg):
        if not isinstance(msg.data, str):
            raise ValueError("not text")
        await self.send("out", msg.data.upper())
"""

EXCLAIM = """
import msgflo


class Exclaim(msgflo.Participant):
    component = "app/Exclaim"
    inports = {"in": "string"}
    outports = {"out": "string"}

    async def process(self, port, msg):
        await self.send("out", msg.data + "!")
"""

GRAPH = """
INPORT=up.IN:IN
OUTPORT=ex.OUT:OUT
up(app/Upper) OUT -> IN ex(app/Exclaim)
"""

TESTS = """
import pytest
from participants.Upper import Upper


async def test_one_participant(msgflo_participant):
    async with msgflo_participant(Upper) as p:
        await p.send("in", "abc")
        assert await p.receive("out") == "ABC"
        await p.send("in", 42)
        assert await p.receive_dead("in") == 42
        assert p.acked["in"] == ["abc"]
        assert p.nacked["in"] == [42]


async def test_whole_graph(msgflo_network):
    async with msgflo_network("graph.fbp") as net:
        await net.send("in", "hi")
        assert await net.receive("out") == "HI!"
        assert sorted(net.participants) == ["ex", "up"]
"""

SUITE = """
name: "shout"
topic: app/Upper
fixture:
  type: fbp
  data: |
    INPORT=up.IN:IN
    OUTPORT=ex.OUT:OUT
    up(app/Upper) OUT -> IN ex(app/Exclaim)
cases:
- name: "a word"
  assertion: "is shouted"
  inputs: { in: "hey" }
  expect: { out: { equals: "HEY!" } }
- name: "a wrong expectation"
  assertion: "fails with expected and actual"
  inputs: { in: "hey" }
  expect: { out: { equals: "hey" } }
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    participants = pytester.mkpydir("participants")
    (participants / "Upper.py").write_text(UPPER)
    (participants / "Exclaim.py").write_text(EXCLAIM)
    (pytester.path / "graph.fbp").write_text(GRAPH)
    (pytester.path / "fbp-config.json").write_text(json.dumps({"msgflo": {"namespace": "app"}}))
    pytester.makepyfile(test_app=TESTS)
    pytester.makeini(
        textwrap.dedent(
            """
            [pytest]
            asyncio_mode = auto
            asyncio_default_fixture_loop_scope = function
            """
        )
    )
    return pytester


def test_fixtures_drive_a_participant_and_a_graph(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "test_app.py")
    result.assert_outcomes(passed=2)


@pytest.mark.broker
@pytest.mark.parametrize("broker", ["amqp://guest:guest@127.0.0.1:5672/", "mqtt://127.0.0.1:1883"])
def test_same_tests_on_a_real_broker(project: pytest.Pytester, broker: str) -> None:
    """--msgflo-broker runs the tests unchanged on RabbitMQ or Mosquitto (dead letters are a
    RabbitMQ/memory feature, so only the graph test runs on Mosquitto)."""
    selection = [] if broker.startswith("amqp") else ["-k", "whole_graph"]
    result = project.runpytest_subprocess("--msgflo-broker", broker, "test_app.py", *selection)
    result.assert_outcomes(passed=2 if broker.startswith("amqp") else 1)


def test_spec_suites_collected_as_tests(project: pytest.Pytester) -> None:
    (project.path / "shout.yaml").write_text(SUITE)
    result = project.runpytest_subprocess("--msgflo-spec", "shout.yaml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*expected 'HEY!' to deeply equal 'hey'*", "*port out*"])


def test_spec_collection_is_opt_in(project: pytest.Pytester) -> None:
    (project.path / "shout.yaml").write_text(SUITE)
    plain = project.runpytest_subprocess("--collect-only", "-q")
    assert "shout.yaml" not in plain.stdout.str()
    opted = project.runpytest_subprocess("--collect-only", "-q", "--msgflo-spec")
    opted.stdout.fnmatch_lines(
        ["shout.yaml::shout: a word", "shout.yaml::shout: a wrong expectation"]
    )
