"""The pytest plugin shipped with msgflo (entry point ``pytest11``: installing msgflo is enough).

Fixtures:
- ``msgflo_broker``: the broker URL tests run on; a fresh ``memory://`` broker per test, or the
  one given with ``--msgflo-broker URL`` (so the same tests run on RabbitMQ or Mosquitto).
- ``msgflo_participant``: ``async with msgflo_participant(Upper) as p`` runs one participant
  class on that broker; ``p.send``, ``p.receive``, ``p.acked``, ``p.nacked``,
  ``p.receive_dead``.
- ``msgflo_network``: ``async with msgflo_network("graph.fbp") as net`` runs a whole graph;
  ``net.send``, ``net.receive``.

With ``--msgflo-spec`` (or ``msgflo_spec = true`` in the ini file) pytest also collects fbp-spec
YAML suites (``*.yaml`` files that have ``topic`` and ``cases``) and runs each case as a test,
against ``--msgflo-spec-address`` or, by default, our runtime started in-process with the
library of the directory pytest runs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from msgflo.library import Library
from msgflo.participant import Participant
from msgflo.testing.network import NetworkProbe, network
from msgflo.testing.probe import ParticipantProbe, participant
from msgflo.testing.runtime import in_process_runtime
from msgflo.testing.spec import CaseResult, FbpClient, SuiteError, run_suites
from msgflo.testing.spec.suite import Suite, parse_suites


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("msgflo")
    group.addoption(
        "--msgflo-broker",
        default=None,
        help="Broker URL for msgflo fixtures (default: a fresh memory:// broker per test).",
    )
    group.addoption(
        "--msgflo-spec",
        action="store_true",
        default=None,
        help="Collect fbp-spec YAML suites as tests.",
    )
    group.addoption(
        "--msgflo-spec-address",
        default=None,
        help="FBP runtime for fbp-spec suites (default: ours, in-process).",
    )
    parser.addini(
        "msgflo_spec", "Collect fbp-spec YAML suites as tests.", type="bool", default=False
    )


@pytest.fixture
def msgflo_broker(request: pytest.FixtureRequest) -> str:
    explicit = request.config.getoption("--msgflo-broker")
    return str(explicit) if explicit else f"memory://test-{uuid.uuid4().hex}"


ParticipantFactory = Callable[..., contextlib.AbstractAsyncContextManager[ParticipantProbe]]
NetworkFactory = Callable[..., contextlib.AbstractAsyncContextManager[NetworkProbe]]


@pytest.fixture
def msgflo_participant(msgflo_broker: str) -> ParticipantFactory:
    def start(
        target: type[Participant] | Participant, role: str | None = None
    ) -> contextlib.AbstractAsyncContextManager[ParticipantProbe]:
        unique = role or f"test{uuid.uuid4().hex[:8]}"
        return participant(target, unique, broker=msgflo_broker)

    return start


@pytest.fixture
def msgflo_network(request: pytest.FixtureRequest) -> NetworkFactory:
    explicit = request.config.getoption("--msgflo-broker")

    def start(
        graph: Any, *, library: Library | None = None, timeout: float = 10.0
    ) -> contextlib.AbstractAsyncContextManager[NetworkProbe]:
        return network(graph, library=library, broker=explicit, timeout=timeout)

    return start


# -- fbp-spec suites as tests ------------------------------------------------------------------


def _spec_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--msgflo-spec") or config.getini("msgflo_spec"))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".yaml" or not _spec_enabled(parent.config):
        return None
    text = file_path.read_text(encoding="utf-8", errors="replace")
    if "topic" not in text or "cases" not in text:
        return None
    return SpecFile.from_parent(parent, path=file_path)


class SpecFile(pytest.File):
    """One fbp-spec YAML file: its suites run once, and each case reports as a test."""

    def collect(self) -> Iterator[pytest.Item]:
        try:
            suites = parse_suites(self.path.read_text(encoding="utf-8"), str(self.path))
        except SuiteError as exc:
            raise self.CollectError(str(exc)) from exc
        for suite in suites:
            for case in suite.cases:
                yield SpecCase.from_parent(
                    self, name=f"{suite.name}: {case.name}", suite=suite, case_name=case.name
                )

    def results(self) -> dict[tuple[str, str], CaseResult]:
        cached: dict[tuple[str, str], CaseResult] | None = getattr(self, "_results", None)
        if cached is None:
            suites = parse_suites(self.path.read_text(encoding="utf-8"), str(self.path))
            address = self.config.getoption("--msgflo-spec-address")
            found = _run_in_thread(_run_spec(suites, address, self.config.rootpath))
            cached = {(r.suite.name, r.case.name): r for r in found}
            self._results = cached
        return cached


class SpecCase(pytest.Item):
    def __init__(self, *, suite: Suite, case_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.case_name = case_name

    def runtest(self) -> None:
        assert isinstance(self.parent, SpecFile)
        result = self.parent.results()[(self.suite.name, self.case_name)]
        if result.skipped:
            pytest.skip(result.case.skip or result.suite.skip or "skipped")
        if result.failure is not None:
            raise SpecFailure(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, SpecFailure):
            result = excinfo.value.result
            assert result.failure is not None
            lines = [f"{result.case.assertion}: {result.failure.message}"]
            for check in result.failure.checks:
                path = f", path {check.path}" if check.path else ""
                lines.append(f"  port {check.port}{path}: actual {check.actual!r}")
            return "\n".join(lines)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        case = next(c for c in self.suite.cases if c.name == self.case_name)
        return self.path, case.line - 1, self.name


class SpecFailure(AssertionError):
    def __init__(self, result: CaseResult) -> None:
        super().__init__(result.failure.message if result.failure else "")
        self.result = result


async def _run_spec(suites: list[Suite], address: str | None, root: Path) -> list[CaseResult]:
    async def against(url: str) -> list[CaseResult]:
        client = FbpClient(url, command_timeout=10.0)
        await client.connect()
        try:
            return await run_suites(client, suites)
        finally:
            await client.close()

    if address:
        return await against(address)
    library = Library.load(None, None, root=root)
    async with in_process_runtime(library) as url:
        return await against(url)


def _run_in_thread(coro: Any) -> list[CaseResult]:
    """Run the suites on an event loop of their own, whatever loop the test session has."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=work, name="msgflo-spec")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: list[CaseResult] = box["value"]
    return result
