"""fbp-spec suites (format 0.8): YAML files with one or more suites, each a fixture graph and
cases of inputs and expectations.

Loading checks every field against the format before anything runs, so a typo in a suite is
one line naming the file, the line and the field, not a confusing failure half-way through a
run against a live runtime.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from msgflo.errors import SpecError

DEFAULT_TIMEOUT_MS = 10000.0
"""How long a case waits for its outputs when neither it nor its suite sets ``timeout``.

fbp-spec's format documents 2 s, but its command line ignores timeouts and waits for ever, so a
suite written against it may need longer (the first case of a suite waits for the fixture's
participants to start); 10 s keeps its verdicts without letting a silent case hang a run."""

OPERATORS = ("type", "equals", "above", "below", "haveKeys", "includeKeys", "contains", "noterror")


class SuiteError(SpecError):
    """A suite file that does not follow the fbp-spec format; the message names file and line."""


@dataclass(frozen=True)
class Expectation:
    """One check on the data that arrived on a port: ``op`` applied to ``value``, optionally
    after selecting parts of the data with a JSONPath."""

    op: str | None
    value: Any
    path: str | None = None
    keys: tuple[str, ...] = ()
    """The keys as written, for the message fbp-spec gives when no operator is among them."""


Expected = dict[str, list[Expectation]]
"""Per outport, the checks on the message that arrives there."""


@dataclass
class Case:
    name: str
    assertion: str
    inputs: list[dict[str, Any]]
    expect: list[Expected]
    skip: str | None = None
    timeout_ms: float | None = None
    line: int = 0


@dataclass
class Fixture:
    type: str
    data: str


@dataclass
class Suite:
    name: str
    topic: str
    file: str
    line: int
    fixture: Fixture | None = None
    cases: list[Case] = field(default_factory=list)
    skip: str | None = None
    timeout_ms: float | None = None

    def case_timeout(self, case: Case) -> float:
        """Seconds to wait for a case's outputs: its own ``timeout``, else the suite's."""
        for timeout in (case.timeout_ms, self.timeout_ms):
            if timeout is not None:
                return timeout / 1000
        return DEFAULT_TIMEOUT_MS / 1000


def load_suites(paths: Sequence[str | Path]) -> list[Suite]:
    """Every suite in ``paths``; a directory contributes its ``.yaml`` files, as fbp-spec reads it."""
    suites: list[Suite] = []
    for path in _files(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SuiteError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise SuiteError(f"{path}: not a UTF-8 text file") from exc
        suites.extend(parse_suites(text, str(path)))
    return suites


def _files(paths: Sequence[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix == ".yaml")
        elif path.exists():
            yield path
        else:
            raise SuiteError(f"{path}: no such file or directory")


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader where PyYAML was built with it: the pure-Python one takes longer to read a
50-case suite than the runtime takes to run it.  Both keep the line of every node."""


def parse_suites(text: str, file: str = "<string>") -> list[Suite]:
    """The suites of one YAML text (several documents, or one document with a list)."""
    try:
        documents = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else file
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(f"{where}: invalid YAML: {problem}") from exc
    reader = _Reader(file)
    suites: list[Suite] = []
    for document in documents:
        if document is None:
            continue
        if isinstance(document, yaml.SequenceNode):
            suites.extend(reader.suite(item) for item in document.value)
        else:
            suites.append(reader.suite(document))
    return suites


class _Reader:
    """Turns YAML nodes into suites, checking shapes where the node still knows its line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._constructor = _LOADER("")

    def fail(self, node: yaml.Node, where: str, problem: str) -> SuiteError:
        return SuiteError(f"{self.file}:{node.start_mark.line + 1}: {where}: {problem}")

    def value(self, node: yaml.Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def mapping(self, node: yaml.Node, where: str) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, f"must be a mapping, not {_kind(node)}")
        fields: dict[str, yaml.Node] = {}
        for key, value in node.value:
            name = self.value(key)
            if not isinstance(name, str):
                raise self.fail(key, where, f"key {name!r} must be a string")
            fields[name] = value
        return fields

    def text(self, fields: dict[str, yaml.Node], name: str, where: str) -> str | None:
        node = fields.get(name)
        if node is None:
            return None
        value = self.value(node)
        if not isinstance(value, str):
            raise self.fail(node, f"{where}.{name}", f"must be a string, not {_kind(node)}")
        return value

    def number(self, fields: dict[str, yaml.Node], name: str, where: str) -> float | None:
        node = fields.get(name)
        if node is None:
            return None
        value = self.value(node)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, f"{where}.{name}", f"must be a number, not {_kind(node)}")
        return float(value)

    def suite(self, node: yaml.Node) -> Suite:
        fields = self.mapping(node, "suite")
        topic = self.text(fields, "topic", "suite")
        if topic is None:
            raise self.fail(node, "suite", "missing required field 'topic'")
        name = self.text(fields, "name", "suite") or topic
        where = f"suite {name!r}"
        suite = Suite(
            name=name,
            topic=topic,
            file=self.file,
            line=node.start_mark.line + 1,
            skip=self.text(fields, "skip", where),
        )
        timeout = self.number(fields, "timeout", where)
        if timeout is not None:
            suite.timeout_ms = timeout
        if "fixture" in fields:
            suite.fixture = self.fixture(fields["fixture"], where)
        cases = fields.get("cases")
        if cases is not None:
            if not isinstance(cases, yaml.SequenceNode):
                raise self.fail(cases, f"{where}.cases", f"must be a list, not {_kind(cases)}")
            suite.cases = [self.case(item, where) for item in cases.value]
        return suite

    def fixture(self, node: yaml.Node, where: str) -> Fixture:
        fields = self.mapping(node, f"{where}.fixture")
        kind = self.text(fields, "type", f"{where}.fixture")
        if kind not in ("fbp", "json"):
            raise self.fail(node, f"{where}.fixture.type", "must be 'fbp' or 'json'")
        data = self.text(fields, "data", f"{where}.fixture")
        if data is None:
            raise self.fail(node, f"{where}.fixture", "missing required field 'data'")
        return Fixture(kind, data)

    def case(self, node: yaml.Node, suite: str) -> Case:
        fields = self.mapping(node, f"{suite}: case")
        name = self.text(fields, "name", f"{suite}: case")
        where = f"{suite}: case {name!r}"
        for required in ("name", "assertion", "inputs", "expect"):
            if required not in fields:
                raise self.fail(node, where, f"missing required field '{required}'")
        assert name is not None
        inputs = self._sequence_of_mappings(fields["inputs"], f"{where}.inputs")
        expect = [
            self.expected(item, f"{where}.expect")
            for item in _items(fields["expect"], allow_list=True)
        ]
        return Case(
            name=name,
            assertion=self.text(fields, "assertion", where) or "",
            inputs=[self.value(item) for item in inputs],
            expect=expect,
            skip=self.text(fields, "skip", where),
            timeout_ms=self.number(fields, "timeout", where),
            line=node.start_mark.line + 1,
        )

    def _sequence_of_mappings(self, node: yaml.Node, where: str) -> list[yaml.Node]:
        items = _items(node, allow_list=True)
        for item in items:
            self.mapping(item, where)
        return items

    def expected(self, node: yaml.Node, where: str) -> Expected:
        expected: Expected = {}
        for port, checks in self.mapping(node, where).items():
            expected[port] = [
                self.expectation(check, f"{where}.{port}")
                for check in _items(checks, allow_list=True)
            ]
        return expected

    def expectation(self, node: yaml.Node, where: str) -> Expectation:
        fields = self.mapping(node, where)
        path = self.text(fields, "path", where)
        op = next((name for name in fields if name != "path" and name in OPERATORS), None)
        value = self.value(fields[op]) if op is not None else None
        if op in ("above", "below") and (isinstance(value, bool) or not _is_number(value)):
            raise self.fail(fields[op], f"{where}.{op}", "must be a number")
        if op in ("haveKeys", "includeKeys") and not (
            isinstance(value, list) and all(isinstance(k, str) for k in value)
        ):
            raise self.fail(fields[op], f"{where}.{op}", "must be a list of strings")
        if op == "type" and not isinstance(value, str):
            raise self.fail(fields[op], f"{where}.type", "must be a string")
        return Expectation(op, value, path, tuple(fields))


def _items(node: yaml.Node, *, allow_list: bool) -> list[yaml.Node]:
    if allow_list and isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return [node]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.rsplit(":", 1)[-1]
    return {"str": "a string", "int": "a number", "float": "a number", "null": "null"}.get(
        tag, f"a {tag}"
    )
