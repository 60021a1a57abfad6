"""Run a whole graph for a test: a coordinator, the graph's Python participants inside the test's
process, the other participants as processes, and a probe that sends into inports and awaits
what comes out of outports.

    async with msgflo.testing.network("graphs/main.fbp") as net:
        await net.send("in", "hello")          # an exported inport, or "node.PORT"
        assert await net.receive("out") == "HELLO"

On the default ``memory://`` broker only Python participants can take part (a process cannot
reach an in-memory broker), so a graph with other components gets an embedded MQTT broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from msgflo.broker import embedded_broker
from msgflo.coordinator import Coordinator, CoordinatorOptions
from msgflo.graph import Graph, load_graph
from msgflo.library import Library
from msgflo.participant import Participant
from msgflo.participant_file import participant_class
from msgflo.runner import instantiate
from msgflo.transport import Address, get_broker, get_client
from msgflo.wiring import VIRTUAL_COMPONENTS, Endpoint

__all__ = ["NetworkProbe", "network"]


class NetworkProbe:
    """A running graph with a harness around its ports."""

    def __init__(self, graph: Graph, coordinator: Coordinator) -> None:
        self.graph = graph
        self.coordinator = coordinator
        self.participants: dict[str, Participant] = {}
        """The participants running inside this process, by role."""
        self._outputs: dict[tuple[str, str], asyncio.Queue[Any]] = {}

    def resolve(self, port: str, kind: str) -> tuple[str, str]:
        """An exported port's name, or ``node.PORT``, as (node, port)."""
        exported = self.graph.inports if kind == "inport" else self.graph.outports
        if port in exported:
            return exported[port].node, exported[port].port
        node, dot, name = port.partition(".")
        if not dot or node not in self.graph.nodes:
            known = ", ".join(sorted(exported)) or "none"
            raise KeyError(f"no {kind} {port!r}: exported {kind}s are {known}, or use NODE.PORT")
        return node, name.lower() if not self.graph.case_sensitive else name

    async def tap(self, port: str) -> None:
        """Start collecting what ``port`` sends (exported outports are tapped from the start)."""
        node, name = self.resolve(port, "outport")
        if (node, name) in self._outputs:
            return
        received: asyncio.Queue[Any] = asyncio.Queue()
        self._outputs[(node, name)] = received

        async def keep(_ref: Endpoint, data: Any) -> None:
            received.put_nowait(data)

        await self.coordinator.tap(Endpoint(node, name), keep)

    async def send(self, port: str, data: Any) -> None:
        node, name = self.resolve(port, "inport")
        await self.coordinator.send(Endpoint(node, name), data)

    async def receive(self, port: str, timeout: float = 5.0) -> Any:
        """The next data ``port`` sent; fails the test after ``timeout`` seconds."""
        node, name = self.resolve(port, "outport")
        if (node, name) not in self._outputs:
            raise AssertionError(f"{port} is not tapped: call tap({port!r}) before sending")
        try:
            return await asyncio.wait_for(self._outputs[(node, name)].get(), timeout)
        except TimeoutError:
            # a test failure: pytest shows the message, a chained TimeoutError is noise
            raise AssertionError(f"nothing arrived on {port} within {timeout:g} s") from None


def _python_components(graph: Graph, library: Library) -> dict[str, Path]:
    """The nodes whose component is a Python file of the library, with that file."""
    found: dict[str, Path] = {}
    for name, node in graph.nodes.items():
        component = library.find(node.component) if node.component else None
        if component is not None and component.language == "python" and component.path:
            found[name] = library.root / component.path
    return found


def _needs_processes(graph: Graph, library: Library, in_process: Mapping[str, Path]) -> bool:
    for name, node in graph.nodes.items():
        if name in in_process or not node.component or node.component in VIRTUAL_COMPONENTS:
            continue
        component = library.find(node.component)
        if component is not None and component.startable:
            return True
    return False


@contextlib.asynccontextmanager
async def _broker(explicit: str | None, processes: bool) -> AsyncIterator[str]:
    if explicit is not None and not (processes and Address.parse(explicit).scheme == "memory"):
        yield explicit
    elif processes:
        async with embedded_broker() as url:
            yield url
    else:
        yield f"memory://test-{uuid.uuid4().hex}"


def _load(
    graph: str | Path | Graph | Mapping[str, Any], library: Library | None
) -> tuple[Graph, Library]:
    if isinstance(graph, str | Path):
        model = load_graph(graph)
        root = Path(graph).resolve().parent
    else:
        model = graph if isinstance(graph, Graph) else Graph.from_json(graph)
        root = Path.cwd()
    return model, library or Library.load(None, None, root=root)


@contextlib.asynccontextmanager
async def network(
    graph: str | Path | Graph | Mapping[str, Any],
    *,
    library: Library | None = None,
    broker: str | None = None,
    timeout: float = 10.0,
) -> AsyncIterator[NetworkProbe]:
    """Run ``graph`` until the block ends; wired (or failing the test) before the block starts.

    ``library`` defaults to the one ``msgflo`` would find beside a graph file (or in the current
    directory); ``broker`` to a fresh ``memory://`` broker.
    """
    model, lib = _load(graph, library)
    in_process = _python_components(model, lib)
    async with _broker(broker, _needs_processes(model, lib, in_process)) as url:
        client = get_client(url)
        await client.connect()
        options = CoordinatorOptions(broker_url=url, ignore=tuple(in_process))
        coordinator = Coordinator(get_broker(url), lib, options)
        probe = NetworkProbe(model, coordinator)
        try:
            await coordinator.start()
            for port in model.outports:
                await probe.tap(port)
            for role, path in in_process.items():
                participant = instantiate(participant_class(path), role)
                await participant.start(client)
                probe.participants[role] = participant
            await coordinator.load_graph(model.to_json())
            if not await coordinator.settled(timeout):
                pending = ", ".join(coordinator.pending_roles()) or "some edges"
                raise AssertionError(f"graph not wired within {timeout:g} s: waiting for {pending}")
            yield probe
        finally:
            for participant in probe.participants.values():
                await participant.stop()
            await coordinator.stop()
            await client.disconnect()
