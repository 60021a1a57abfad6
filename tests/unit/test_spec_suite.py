"""fbp-spec suites: what loads, and the one line a malformed suite gets."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from msgflo.cli import spec as spec_cli
from msgflo.testing.spec import SuiteError, load_suites, parse_suites

GOOD = """
name: "s"
topic: core/Repeat
timeout: 500
cases:
- name: one
  assertion: passes
  inputs: { in: 1 }
  expect: { out: [ { type: number }, { above: 0 } ] }
- name: seq
  assertion: two messages
  inputs: [ { in: 1 }, { in: 2 } ]
  expect: [ { out: { equals: 1 } }, { out: { path: "$.x", equals: 2 } } ]
  timeout: 100
  skip: "not today"
"""


def test_a_suite_with_single_and_sequence_cases() -> None:
    [suite] = parse_suites(GOOD, "good.yaml")
    assert (suite.name, suite.topic, suite.timeout_ms) == ("s", "core/Repeat", 500.0)
    one, seq = suite.cases
    assert one.inputs == [{"in": 1}]
    assert [c.op for c in one.expect[0]["out"]] == ["type", "above"]
    assert len(seq.inputs) == len(seq.expect) == 2
    assert seq.expect[1]["out"][0].path == "$.x"
    assert suite.case_timeout(one) == 0.5 and suite.case_timeout(seq) == 0.1
    assert seq.skip == "not today"


def test_several_documents_and_a_list_of_suites() -> None:
    text = "topic: a\n---\n- topic: b\n- topic: c\n  name: named\n"
    assert [s.name for s in parse_suites(text)] == ["a", "b", "named"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases: []\n", "bad.yaml:1: suite: missing required field 'topic'"),
        ("topic: t\ncases: {}\n", "bad.yaml:2: suite 't'.cases: must be a list, not a mapping"),
        (
            "topic: t\ncases:\n- name: c\n  assertion: a\n  inputs: {in: 1}\n",
            "bad.yaml:3: suite 't': case 'c': missing required field 'expect'",
        ),
        (
            "topic: t\ncases:\n- name: c\n  assertion: a\n  inputs: {in: 1}\n  expect: {out: {above: x}}\n",
            "bad.yaml:6: suite 't': case 'c'.expect.out.above: must be a number",
        ),
        (
            "topic: t\ntimeout: soon\n",
            "bad.yaml:2: suite 't'.timeout: must be a number, not a string",
        ),
        ("topic: [\n", "bad.yaml:2: invalid YAML"),
        (
            "topic: t\nfixture: {type: xml, data: x}\n",
            "bad.yaml:2: suite 't'.fixture.type: must be 'fbp' or 'json'",
        ),
    ],
)
def test_malformed_suite_is_one_line_with_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(SuiteError) as info:
        parse_suites(text, "bad.yaml")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_directories_contribute_their_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("topic: a\n")
    (tmp_path / "b.yml").write_text("topic: ignored, as fbp-spec reads only .yaml\n")
    assert [s.topic for s in load_suites([tmp_path])] == ["a"]
    with pytest.raises(SuiteError, match=r"nope\.yaml: no such file"):
        load_suites([tmp_path / "nope.yaml"])


def test_cli_malformed_suite_and_unreachable_runtime(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases: []\n")
    result = CliRunner().invoke(spec_cli.main, [str(bad)])
    assert result.exit_code == 1
    assert "bad.yaml:1: suite: missing required field 'topic'" in result.output

    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    args = ["--address", "ws://127.0.0.1:9", "--start-timeout", "0.3", str(good)]
    result = CliRunner().invoke(spec_cli.main, args)
    assert result.exit_code == 1
    assert "cannot reach the FBP runtime at ws://127.0.0.1:9" in result.output
