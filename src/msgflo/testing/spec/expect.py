"""The checks of fbp-spec, with the verdicts its chai assertions give on JSON data.

fbp-spec runs in JavaScript, so its checks follow JavaScript's rules: ``true`` is not ``1``,
``1`` equals ``1.0``, ``contains`` on a list compares items by identity (so an object is never
found in a list), ``type`` distinguishes ``array``, ``object`` and ``null``. The same suite
must give the same verdict here, so these functions follow those rules rather than Python's.
Messages keep chai's wording ("expected 1 to deeply equal 2"), which users know from fbp-spec.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import ExtendedJsonPathParser

from msgflo.testing.spec.suite import OPERATORS, Expected


class ExpectationFailed(AssertionError):
    """A check that did not hold; carries what was expected and what arrived."""

    def __init__(
        self, message: str, *, port: str = "", path: str | None = None, actual: Any = None
    ) -> None:
        super().__init__(message)
        self.port = port
        self.path = path
        self.actual = actual


def js_type(value: Any) -> str:
    """The name chai's ``a(...)`` compares with (type-detect, lower-cased)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def js_equal(a: Any, b: Any) -> bool:
    """Deep equality as chai's ``eql`` decides it for JSON values."""
    ta, tb = js_type(a), js_type(b)
    if ta != tb:
        return False
    if ta == "number":
        return bool(a == b or (math.isnan(a) and math.isnan(b)))
    if ta == "array":
        return len(a) == len(b) and all(js_equal(x, y) for x, y in zip(a, b, strict=True))
    if ta == "object":
        return a.keys() == b.keys() and all(js_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _strict_equal(a: Any, b: Any) -> bool:
    """JavaScript's ``===``: objects and arrays are equal only to themselves."""
    if js_type(a) in ("object", "array") or js_type(b) in ("object", "array"):
        return a is b
    return js_equal(a, b)


def inspect(value: Any) -> str:
    """A value as chai prints it in a message."""
    kind = js_type(value)
    if kind == "string":
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
    if kind == "number":
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return repr(value)
    if kind in ("boolean", "null"):
        return {True: "true", False: "false", None: "null"}[value]
    if kind == "array":
        return "[]" if not value else "[ " + ", ".join(inspect(v) for v in value) + " ]"
    if not value:
        return "{}"
    return "{ " + ", ".join(f"{_key(k)}: {inspect(v)}" for k, v in value.items()) + " }"


def _key(key: str) -> str:
    return key if key.isidentifier() else inspect(key)


def _keys_of(value: Any) -> list[str]:
    kind = js_type(value)
    if kind == "object":
        return list(value)
    if kind in ("array", "string"):
        return [str(i) for i in range(len(value))]
    return []


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _check_type(actual: Any, expected: Any) -> None:
    wanted = str(expected).lower()
    if js_type(actual) != wanted:
        raise ExpectationFailed(f"expected {inspect(actual)} to be {_article(wanted)}")


def _check_equals(actual: Any, expected: Any) -> None:
    if not js_equal(actual, expected):
        raise ExpectationFailed(f"expected {inspect(actual)} to deeply equal {inspect(expected)}")


def _compare(word: str, holds: Callable[[float, float], bool]) -> Callable[[Any, Any], None]:
    def check(actual: Any, expected: Any) -> None:
        if js_type(actual) != "number":
            raise ExpectationFailed(f"expected {inspect(actual)} to be a number or a date")
        if not holds(actual, expected):
            raise ExpectationFailed(f"expected {inspect(actual)} to be {word} {inspect(expected)}")

    return check


def _keys_text(keys: Sequence[str]) -> str:
    quoted = [inspect(k) for k in keys]
    if len(quoted) == 1:
        return f"key {quoted[0]}"
    return "keys " + ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _check_have_keys(actual: Any, expected: Sequence[str]) -> None:
    if not expected or sorted(_keys_of(actual)) != sorted(expected):
        raise ExpectationFailed(f"expected {inspect(actual)} to have {_keys_text(expected)}")


def _check_include_keys(actual: Any, expected: Sequence[str]) -> None:
    present = set(_keys_of(actual))
    if not expected or any(k not in present for k in expected):
        raise ExpectationFailed(f"expected {inspect(actual)} to contain {_keys_text(expected)}")


def _check_contains(actual: Any, expected: Any) -> None:
    kind = js_type(actual)
    if kind == "string":
        found = isinstance(expected, str) and expected in actual
    elif kind == "array":
        found = any(_strict_equal(item, expected) for item in actual)
    elif kind == "object" and js_type(expected) == "object":
        found = all(k in actual and _strict_equal(actual[k], v) for k, v in expected.items())
    else:
        raise ExpectationFailed(
            f"the given combination of arguments ({js_type(actual)} and {js_type(expected)}) "
            "is invalid for this assertion"
        )
    if not found:
        raise ExpectationFailed(f"expected {inspect(actual)} to include {inspect(expected)}")


def _check_not_error(actual: Any, _expected: Any) -> None:
    if js_type(actual) == "object" and actual.get("message"):
        raise ExpectationFailed(str(actual["message"]))


CHECKS: dict[str, Callable[[Any, Any], None]] = {
    "type": _check_type,
    "equals": _check_equals,
    "above": _compare("above", lambda a, e: a > e),
    "below": _compare("below", lambda a, e: a < e),
    "haveKeys": _check_have_keys,
    "includeKeys": _check_include_keys,
    "contains": _check_contains,
    "noterror": _check_not_error,
}
assert tuple(CHECKS) == OPERATORS


@functools.cache
def _parser() -> ExtendedJsonPathParser:
    """One parser (with filters, ``[?(@.n > 1)]``) for every path: jsonpath-ng's ``parse``
    builds its parser tables anew on each call, which costs more than a whole case."""
    return ExtendedJsonPathParser()


@functools.lru_cache(maxsize=1024)
def compiled(path: str) -> JSONPath:
    """A suite repeats its few paths in every case; each is parsed once."""
    return _parser().parse(path)


def select(path: str, data: Any) -> list[Any]:
    """What a JSONPath picks out of ``data``; none at all fails, as in fbp-spec."""
    try:
        expression = compiled(path)
    except (JsonPathLexerError, JsonPathParserError) as exc:
        raise ExpectationFailed(f"invalid JSONPath '{path}': {exc}", path=path) from exc
    matches = [match.value for match in expression.find(data)]
    if not matches:
        raise ExpectationFailed(
            f"expected JSONPath '{path}' to match data in {_json(data)}", path=path, actual=data
        )
    return matches


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def check_message(expected: Expected, received: dict[str, Any]) -> None:
    """Check what arrived on each port against one message's expectations."""
    for port, checks in expected.items():
        for check in checks:
            if port not in received:
                raise ExpectationFailed(f"No data received on port {port}", port=port)
            data = received[port]
            if check.op is None:
                raise ExpectationFailed(
                    f"fbp-spec: No operator matching {','.join(check.keys)}. "
                    f"Available: {','.join(OPERATORS)}",
                    port=port,
                )
            matches = select(check.path, data) if check.path else [data]
            for match in matches:
                try:
                    CHECKS[check.op](match, check.value)
                except ExpectationFailed as exc:
                    raise ExpectationFailed(
                        str(exc), port=port, path=check.path, actual=match
                    ) from None  # the same failure with its place added: chained, it shows twice


@dataclass
class Failure:
    """Why a case failed: fbp-spec's error text, and each failed check with its data."""

    message: str
    checks: list[ExpectationFailed] = field(default_factory=list)


def verdict(expects: Sequence[Expected], actuals: Sequence[dict[str, Any]]) -> Failure | None:
    """None when every message of a case met its expectations."""
    if len(actuals) < len(expects):
        return Failure(f"Only got {len(actuals)} output messages out of {len(expects)}")
    errors: list[ExpectationFailed | None] = []
    for expected, actual in zip(expects, actuals, strict=False):
        try:
            check_message(expected, actual)
            errors.append(None)
        except ExpectationFailed as exc:
            errors.append(exc)
    failed = [(i, e) for i, e in enumerate(errors) if e is not None]
    if not failed:
        return None
    checks = [e for _, e in failed]
    if len(expects) == 1:
        return Failure(str(checks[0]), checks)
    if len(failed) == 1:
        return Failure(f"Expectation {failed[0][0]} of sequence failed: {checks[0]}", checks)
    text = ",".join(str(e) if e is not None else "" for e in errors)
    return Failure(f"Multiple failures in sequence: {text}", checks)
