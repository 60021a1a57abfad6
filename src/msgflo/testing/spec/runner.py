"""Run fbp-spec suites against an FBP runtime: set up each suite's fixture graph over the
protocol, start it, send each case's inputs into the exported inports and judge what comes out
of the exported outports, then stop the network.

The order of events and the verdicts follow fbp-spec 0.8: a message step is complete once every
expected port has had data; a ``network:error``/``network:processerror`` or an unexpected packet
on an ``error`` port fails the case at once. Unlike fbp-spec, a case whose outputs never arrive
fails after its ``timeout`` instead of hanging the run, and a suite whose fixture cannot be set
up fails its cases instead of ending the run.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from msgflo.errors import SpecError
from msgflo.graph import GraphError, parse_fbp
from msgflo.testing.spec.client import FbpClient, Signal
from msgflo.testing.spec.expect import Failure, verdict
from msgflo.testing.spec.suite import Case, Expected, Suite


@dataclass
class CaseResult:
    suite: Suite
    case: Case
    failure: Failure | None = None
    skipped: bool = False
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.failure is None


ResultHandler = Callable[[CaseResult], Awaitable[None] | None]


class CaseError(SpecError):
    """A case that could not be judged (no output in time, an error from the network)."""


async def run_suites(
    client: FbpClient, suites: Sequence[Suite], on_result: ResultHandler | None = None
) -> list[CaseResult]:
    """Run every suite in order; each case's result is handed to ``on_result`` as it is known."""
    results: list[CaseResult] = []

    async def report(result: CaseResult) -> None:
        results.append(result)
        if on_result is not None:
            outcome = on_result(result)
            if outcome is not None:
                await outcome

    for suite in suites:
        await SuiteRun(client, suite).run(report)
    return results


class SuiteRun:
    def __init__(self, client: FbpClient, suite: Suite) -> None:
        self.client = client
        self.suite = suite
        self.graph_id = ""

    async def run(self, report: Callable[[CaseResult], Awaitable[None]]) -> None:
        suite = self.suite
        if suite.skip:
            for case in suite.cases:
                await report(CaseResult(suite, case, skipped=True))
            return
        active = [case for case in suite.cases if not case.skip]
        setup_error: str | None = None
        if active:
            try:
                await self.setup()
            except Exception as exc:
                setup_error = f"fixture for suite {suite.name!r} could not be set up: {exc}"
        for case in suite.cases:
            if case.skip:
                await report(CaseResult(suite, case, skipped=True))
            elif setup_error is not None:
                await report(CaseResult(suite, case, Failure(setup_error)))
            else:
                await report(await self.run_case(case))
        if active and setup_error is None:
            await self.client.request("network", "stop", {"graph": self.graph_id}, ("stopped",))

    async def setup(self) -> None:
        graph = await self.fixture()
        self.graph_id = (
            graph.get("name")
            or (graph.get("properties") or {}).get("id")
            or f"fixture.{secrets.token_hex(5)}"
        )
        await send_graph(self.client, self.graph_id, graph)
        await self.client.request("network", "start", {"graph": self.graph_id}, ("started",))

    async def fixture(self) -> dict[str, Any]:
        fixture = self.suite.fixture
        if fixture is None:
            return await self.topic_fixture()
        if fixture.type == "json":
            try:
                graph = json.loads(fixture.data)
            except ValueError as exc:
                raise CaseError(f"fixture is not JSON: {exc}") from exc
            if not isinstance(graph, dict):
                raise CaseError("fixture must be a JSON object")
            return graph
        try:
            return parse_fbp(fixture.data, file=self.suite.file).to_json()
        except GraphError as exc:
            raise CaseError(str(exc)) from exc

    async def topic_fixture(self) -> dict[str, Any]:
        """A graph of the topic component alone with all its ports exported, as fbp-spec makes
        it for a suite without a fixture."""
        components = await list_components(self.client)
        topic = self.suite.topic
        component = components.get(topic)
        if component is None:
            raise CaseError(f"Could not find component for topic: {topic}")
        inports = [p["id"] for p in component.get("inPorts", [])]
        outports = [p["id"] for p in component.get("outPorts", [])]
        if not outports:
            raise CaseError(f"Component '{topic}' used as fixture has no outports")
        if not inports:
            raise CaseError(f"Component '{topic}' used as fixture has no inports")
        return {
            "properties": {},
            "processes": {"testee": {"component": topic}},
            "connections": [],
            "inports": {p: {"process": "testee", "port": p} for p in inports},
            "outports": {p: {"process": "testee", "port": p} for p in outports},
        }

    async def run_case(self, case: Case) -> CaseResult:
        started = time.monotonic()
        if len(case.inputs) != len(case.expect):
            failure = Failure(
                f"Test sequence length mismatch. Got {len(case.inputs)} inputs "
                f"and {len(case.expect)} expectations"
            )
            return CaseResult(self.suite, case, failure)
        actuals: list[dict[str, Any]] = []
        try:
            for inputs, expected in zip(case.inputs, case.expect, strict=True):
                actuals.append(await self.step(inputs, expected, self.suite.case_timeout(case)))
        except Exception as exc:  # any error of a case is that case's failure, not the run's
            return CaseResult(self.suite, case, Failure(str(exc)), seconds=_since(started))
        return CaseResult(self.suite, case, verdict(case.expect, actuals), seconds=_since(started))

    async def step(
        self, inputs: dict[str, Any], expected: Expected, timeout: float
    ) -> dict[str, Any]:
        """Send one message's inputs and collect the outputs the expectation names."""
        received: dict[str, Any] = {}
        async with self.client.observe() as signals:
            for port, payload in inputs.items():
                await self.client.send(
                    "runtime",
                    "packet",
                    {"event": "data", "port": port, "payload": payload, "graph": self.graph_id},
                )
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        signal = await signals.get()
                        if signal is None:
                            raise CaseError("the runtime closed the connection")
                        self.fail_on_error(signal, expected)
                        if self.is_output(signal):
                            received[signal.payload["port"]] = signal.payload.get("payload")
                            if len(received) == len(expected):
                                return received
            except TimeoutError as exc:
                missing = [p for p in expected if p not in received]
                raise CaseError(
                    f"no data on {', '.join(missing)} within {timeout:g} s"
                    + (f" (got {', '.join(received)})" if received else "")
                ) from exc

    def is_output(self, signal: Signal) -> bool:
        payload = signal.payload if isinstance(signal.payload, dict) else {}
        return (
            signal.protocol == "runtime"
            and signal.command == "packet"
            and payload.get("graph") == self.graph_id
            and payload.get("event") == "data"
        )

    def fail_on_error(self, signal: Signal, expected: Expected) -> None:
        payload = signal.payload if isinstance(signal.payload, dict) else {}
        network_error = signal.protocol == "network" and signal.command in ("error", "processerror")
        if network_error and payload.get("graph") in (None, self.graph_id):
            raise CaseError(str(payload.get("message") or payload.get("error") or payload))
        if self.is_output(signal) and payload.get("port") == "error" and "error" not in expected:
            raise CaseError(f"unexpected data on port error: {payload.get('payload')!r}")


async def send_graph(client: FbpClient, graph_id: str, graph: dict[str, Any]) -> None:
    """Build ``graph`` on the runtime with one command per node, edge, IIP and exported port."""
    properties = graph.get("properties") or {}
    await client.request(
        "graph",
        "clear",
        {
            "id": graph_id,
            "name": graph_id,
            "main": False,
            "library": properties.get("library") or client.definition.get("namespace") or "",
            "icon": properties.get("icon") or "",
            "description": properties.get("description") or "",
        },
        ("clear",),
    )
    for name, process in (graph.get("processes") or {}).items():
        await client.request(
            "graph",
            "addnode",
            {
                "id": name,
                "component": process.get("component"),
                "metadata": process.get("metadata") or {},
                "graph": graph_id,
            },
            ("addnode",),
        )
    for connection in graph.get("connections") or []:
        tgt = _protocol_port(connection.get("tgt"))
        meta = connection.get("metadata") or {}
        if "src" in connection:
            src = _protocol_port(connection["src"])
            payload = {"src": src, "tgt": tgt, "metadata": meta, "graph": graph_id}
            await client.request("graph", "addedge", payload, ("addedge",))
        else:
            payload = {
                "src": {"data": connection.get("data")},
                "tgt": tgt,
                "metadata": meta,
                "graph": graph_id,
            }
            await client.request("graph", "addinitial", payload, ("addinitial",))
    for direction in ("inports", "outports"):
        command = "addinport" if direction == "inports" else "addoutport"
        for public, port in (graph.get(direction) or {}).items():
            payload = {
                "public": public,
                "node": port.get("process"),
                "port": port.get("port"),
                "graph": graph_id,
            }
            await client.request("graph", command, payload, (command,))


async def list_components(client: FbpClient) -> dict[str, dict[str, Any]]:
    """The runtime's components by name (``component:list`` ends with ``componentsready``)."""
    components: dict[str, dict[str, Any]] = {}
    async with client.observe() as signals:
        await client.send("component", "list", {})
        async with asyncio.timeout(client.command_timeout):
            while True:
                signal = await signals.get()
                if signal is None:
                    raise CaseError("the runtime closed the connection")
                if signal.protocol != "component":
                    continue
                if signal.command == "component":
                    components[signal.payload["name"]] = signal.payload
                elif signal.command in ("componentsready", "error"):
                    return components


def _protocol_port(ref: Any) -> dict[str, Any]:
    """An fbp-graph JSON port reference (``process``) as the protocol names it (``node``)."""
    ref = ref if isinstance(ref, dict) else {}
    port = {"node": ref.get("process"), "port": ref.get("port")}
    if ref.get("index") is not None:
        port["index"] = ref["index"]
    return port


def _since(started: float) -> float:
    return time.monotonic() - started
