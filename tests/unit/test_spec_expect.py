"""The checks give fbp-spec's (chai's) verdicts on JSON data, including where JavaScript and
Python disagree about equality."""

from __future__ import annotations

from typing import Any

import pytest

from msgflo.testing.spec.expect import ExpectationFailed, check_message, verdict
from msgflo.testing.spec.suite import Expectation


def holds(op: str, actual: Any, value: Any, path: str | None = None) -> bool:
    try:
        check_message({"out": [Expectation(op, value, path)]}, {"out": actual})
    except ExpectationFailed:
        return False
    return True


@pytest.mark.parametrize(
    ("op", "actual", "value", "expected"),
    [
        ("equals", 1, 1.0, True),
        ("equals", True, 1, False),
        ("equals", 0, False, False),
        ("equals", {"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}, True),
        ("equals", {"a": 1}, {"a": 1, "b": 2}, False),
        ("equals", [1, 2], [2, 1], False),
        ("type", [], "array", True),
        ("type", [], "object", False),
        ("type", None, "null", True),
        ("type", {}, "Object", True),
        ("type", True, "boolean", True),
        ("type", 1.5, "number", True),
        ("above", 3, 2, True),
        ("above", 2, 2, False),
        ("above", "3", 2, False),
        ("below", 1, 2, True),
        ("haveKeys", {"a": 1, "b": 2}, ["b", "a"], True),
        ("haveKeys", {"a": 1, "b": 2}, ["a"], False),
        ("includeKeys", {"a": 1, "b": 2}, ["a"], True),
        ("includeKeys", {"a": 1}, ["a", "c"], False),
        ("contains", "a substring here", "substring", True),
        ("contains", [1, 2, 3], 2, True),
        ("contains", [{"a": 1}], {"a": 1}, False),
        ("contains", {"a": 1, "b": 2}, {"a": 1}, True),
        ("contains", 5, 5, False),
        ("noterror", {"message": "boom"}, None, False),
        ("noterror", {"ok": 1}, None, True),
    ],
)
def test_checks_follow_javascript(op: str, actual: Any, value: Any, expected: bool) -> None:
    assert holds(op, actual, value) is expected


def test_jsonpath_checks_every_match_and_fails_on_none() -> None:
    data = {"items": [{"sku": "a1"}, {"sku": "b2"}]}
    assert holds("type", data, "string", path="$.items[*].sku")
    assert not holds("equals", data, "a1", path="$.items[*].sku")
    with pytest.raises(ExpectationFailed, match=r"expected JSONPath '\$.nope' to match data in"):
        check_message({"out": [Expectation("equals", 1, "$.nope")]}, {"out": data})


def test_failure_names_port_path_and_actual() -> None:
    with pytest.raises(ExpectationFailed) as info:
        check_message({"out": [Expectation("equals", 2, "$.n")]}, {"out": {"n": 1}})
    assert str(info.value) == "expected 1 to deeply equal 2"
    assert (info.value.port, info.value.path, info.value.actual) == ("out", "$.n", 1)


def test_sequence_verdicts_word_as_fbp_spec() -> None:
    want = [{"out": [Expectation("equals", 1)]}, {"out": [Expectation("equals", 2)]}]
    assert verdict(want, [{"out": 1}, {"out": 2}]) is None
    second = verdict(want, [{"out": 1}, {"out": 3}])
    assert second is not None
    assert second.message == "Expectation 1 of sequence failed: expected 3 to deeply equal 2"
    both = verdict(want, [{"out": 0}, {"out": 3}])
    assert both is not None and both.message.startswith("Multiple failures in sequence: ")
    missing = verdict(want, [{"out": 1}])
    assert missing is not None and missing.message == "Only got 1 output messages out of 2"
    nothing = verdict([{"out": [Expectation("equals", 1)]}], [{"other": 1}])
    assert nothing is not None and nothing.message == "No data received on port out"
