"""The coordinator: owns a running network and keeps it running.

It turns graph changes and discoveries into wiring; the parts it drives live beside it: the
registry of participants (:mod:`.registry`), the processes it starts (:mod:`.supervisor`), the
IIPs owed (:mod:`.initials`), how bindings are made (:mod:`.binder`) and observed
(:mod:`.taps`), what listeners hear (:mod:`.events`), the graph edits and port access it offers
(:mod:`.edits`), participants taken in and counted gone (:mod:`.membership`), the bindings it
made (:mod:`.ledger`) and local autoscaling (:mod:`.autoscaler`).

Unlike the original, nothing here waits for a participant: a node whose participant is late,
foreign, or unknown to the library stays *pending* and is wired the moment it announces itself.
Every change (discovery, graph edit) goes through one lock and one re-plan, so the order in
which participants appear never matters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msgflo.control import ControlClient
from msgflo.coordinator.binder import Applied, Binder
from msgflo.coordinator.discovery import Arrivals, Discovery
from msgflo.coordinator.edits import GraphEdits, Role
from msgflo.coordinator.events import CoordinatorError, Event, EventKind, Events, Listener
from msgflo.coordinator.failures import Failures
from msgflo.coordinator.initials import Initials
from msgflo.coordinator.ledger import LEDGER_FILE, Ledger, default_path
from msgflo.coordinator.membership import Membership
from msgflo.coordinator.registry import (
    STATE_FILE,
    Registry,
    StateFile,
    expire_forever,
)
from msgflo.coordinator.supervisor import Instances, Supervisor, SupervisorOptions
from msgflo.coordinator.taps import Observers
from msgflo.library import Library
from msgflo.presence import discovery_period
from msgflo.transport import Binding, Broker, TransportError
from msgflo.wiring import (
    VIRTUAL_COMPONENTS,
    Direction,
    GraphSpec,
    Link,
    Planned,
    convention_resolver,
    discovery_resolver,
    plan,
)


@dataclass(slots=True)
class CoordinatorOptions:
    broker_url: str = ""
    """Handed to children as ``MSGFLO_BROKER`` (may differ from how the coordinator connects)."""
    ignore: Sequence[str] = ()
    wait_timeout: float = 45.0
    state_dir: Path | None = None
    static: bool = False
    """Wire by the ``role.PORT`` convention instead of discovery (``msgflo-setup`` without
    ``--discover``)."""
    send_iips: bool = True
    iips_in_command: bool = False
    """Hand IIPs to started participants through ``#IIPS`` (static ``msgflo-setup``, where no
    discovery tells which queue to send them to)."""
    start_participants: bool = True
    shell: str | None = None
    """Run each command as ``SHELL -c COMMAND`` (``msgflo-setup --shell``)."""
    discovery_period: float = field(default_factory=discovery_period)
    concurrency: int = 10
    max_failures: int = 5
    stop_grace: float = 5.0
    backoff_base: float = 0.5
    instances: Mapping[str, int] = field(default_factory=dict)
    """Copies of a role to start (one when not given); an autoscaler changes them later."""

    def supervisor_options(self) -> SupervisorOptions:
        return SupervisorOptions(
            broker_url=self.broker_url,
            concurrency=self.concurrency,
            ready_timeout=self.wait_timeout,
            stop_grace=self.stop_grace,
            max_failures=self.max_failures,
            backoff_base=self.backoff_base,
        )


class Coordinator(GraphEdits, Membership):
    def __init__(
        self,
        broker: Broker,
        library: Library | None = None,
        options: CoordinatorOptions | None = None,
    ) -> None:
        self.broker = broker
        self.library = library
        self.options = options or CoordinatorOptions(broker_url=broker.url)
        if not self.options.broker_url:
            self.options.broker_url = broker.url
        opts = self.options
        self.events = Events()
        path = opts.state_dir / STATE_FILE if opts.state_dir else None
        self.registry = Registry.load(path) if path else Registry()
        self.state = StateFile(
            path,
            self.registry,
            opts.discovery_period,
            lambda text: self.events.warn_once(f"state {text}", text),
        )
        self.nodes: dict[str, Role] = {}
        self.edges: list[Link] = []
        self.initials = Initials(
            broker, self.registry, self.events, lambda: self.wiring, self._awaited
        )
        self.supervisor = Supervisor(
            library,
            opts.supervisor_options(),
            self.events,
            ignore=opts.ignore,
            shell=opts.shell,
            exited=self._child_exited,
            instances=opts.instances,
        )
        self.binder = Binder(
            broker, self.registry, self.events, static=opts.static, spawn=self._spawn
        )
        self.arrivals = Arrivals(self._take_in, self._take_in_failed)
        self.discovery = Discovery(broker, self.events, self.arrivals.add, self.binder.can_answer)
        self.failures = Failures(broker, self.events)
        self.applied = Applied(self.binder, self.events)
        self.observers = Observers(broker, self.registry, self.events)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.ledger: Ledger | None = None
        if broker.bindings_outlive_clients:
            where = opts.state_dir / LEDGER_FILE if opts.state_dir else None
            self.ledger = Ledger(where or default_path(broker.address.redacted()), self.events)

    # -- what other parts read ------------------------------------------------------------

    @property
    def children(self) -> dict[str, Instances]:
        return self.supervisor.children

    @property
    def wiring(self) -> dict[str, Planned]:
        """The applied plan by key (``edge A.out -> B.in``, ``node RR``)."""
        return self.applied.wiring

    @property
    def control(self) -> ControlClient:
        return self.binder.control

    @property
    def attached(self) -> dict[Binding, set[str]]:
        return self.binder.attached

    @property
    def graph(self) -> GraphSpec:
        return GraphSpec(
            processes={name: node.component for name, node in self.nodes.items()},
            edges=list(self.edges),
            initials=list(self.initials.packets),
        )

    def add_listener(self, listener: Listener) -> None:
        self.events.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        self.events.remove(listener)

    def _emit(self, event: Event) -> None:
        self.events.emit(event)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and listen for participants; the cached registry is usable at once."""
        await self.broker.connect()
        if not self.options.static:
            await self.discovery.start()
            await self.failures.start()
        self._spawn(expire_forever(self.registry, self.options.discovery_period, self._expired))

    async def stop(self) -> None:
        """Stop every child this coordinator started, then disconnect."""
        await self.arrivals.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.supervisor.stop()
        self.state.save(force=True)
        with contextlib.suppress(TransportError):
            await self.broker.disconnect()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self) -> None:
        forgotten = self.registry.forget(self.nodes.__contains__)
        if self.library is None or not forgotten:
            return
        remaining = {i.component for i in self.registry.instances.values()}
        for component in {i.component for i in forgotten} - remaining:
            self.library.forget_discovered(component)

    # -- graph ---------------------------------------------------------------------------

    async def load_graph(self, graph: Mapping[str, Any] | GraphSpec) -> None:
        """Replace the network's graph; returns once what can be wired now is wired.

        Participants are started in the background and nodes that are not discovered yet stay
        pending: a late or absent participant never blocks or fails the load.
        """
        spec = graph if isinstance(graph, GraphSpec) else GraphSpec.from_json(graph)
        metadata = {} if isinstance(graph, GraphSpec) else graph.get("processes") or {}
        async with self._lock:
            for role in [r for r in self.children if r not in spec.processes]:
                self.supervisor.retire(role)
                # Stopping takes a moment; a graph loaded meanwhile must not wait for answers
                # from participants that are on their way out (a stop and a start of the same
                # network back to back, as FBP clients and fbp-spec do).  The load re-plans
                # below, so reporting them is all there is to do.
                self._report_gone(self.registry.retired(role), "stopped: its node left the graph")
            self.nodes = {
                name: Role(name, component, dict((metadata.get(name) or {}).get("metadata") or {}))
                for name, component in spec.processes.items()
            }
            self.edges = list(spec.edges)
            self.initials.packets = list(spec.initials)
            if self.ledger is not None:
                self.ledger.started(self.nodes)
            for name in spec.participant_roles():
                self._start_node(self.nodes[name])
            self.initials.forget_owed()
            for role in {i.tgt.process for i in self.initials.packets}:
                if self.discovered(role):
                    self._owe_initials(role)
            self._forget()
            await self._rewire()
        self._emit(Event(EventKind.GRAPH_CHANGED, message="graph loaded"))

    def _start_node(self, node: Role) -> None:
        role, component = node.name, node.component
        if component in VIRTUAL_COMPONENTS or role in self.children:
            return
        self._spawn(self._watch_pending(role))
        if self.options.start_participants:
            iips = (
                {i.tgt.port: i.data for i in self.initials.to(role)}
                if self.options.iips_in_command
                else {}
            )
            self.supervisor.start(role, component, iips=iips)

    async def _watch_pending(self, role: str) -> None:
        """``--wait-timeout`` is a warning, never an exit: the node stays pending."""
        await asyncio.sleep(self.options.wait_timeout)
        if role in self.nodes and not self.registry.count(role) and not self.options.static:
            self._emit(
                Event(
                    EventKind.WARNING,
                    role,
                    f"{role}: not discovered after {self.options.wait_timeout:g} s; its edges stay pending",
                )
            )

    def planned(self, edge: Link) -> Planned:
        for planned in self.wiring.values():
            if edge in planned.edges:
                return planned
        raise CoordinatorError(f"no edge {edge} in the graph")

    # -- wiring and IIPs ---------------------------------------------------------------

    def _resolver(self) -> Callable[[str, Direction, str], str]:
        if self.options.static:
            return convention_resolver
        return discovery_resolver(self.registry.definitions())

    async def _rewire(self) -> None:
        """Re-plan from the graph and what is known, apply the difference, then follow taps
        and pay the IIPs whose downstream is now wired."""
        await self.applied.apply(plan(self.graph, self._resolver()), self.nodes.__contains__)
        if self.ledger is not None:
            await self.ledger.clean(self.wiring, self.binder, self.nodes.__contains__)
        await self.observers.apply_taps()
        await self.initials.pay()
        await self.applied.notify()

    def _awaited(self, role: str) -> bool:
        """Whether a node that has not announced itself is expected to (see :class:`Initials`)."""
        node = self.nodes.get(role)
        if node is None or node.component in VIRTUAL_COMPONENTS:
            return False
        if self.library is None or role in self.options.ignore or role in self.children:
            return True
        return self.library.find(node.component) is not None

    async def applied_now(self) -> None:
        """Return once the change being applied now, if any, is applied: an event about a
        participant is emitted while its wiring and taps are still being made."""
        async with self._lock:
            pass

    async def settled(self, timeout: float) -> bool:
        """Wait until no edge waits for a participant; ``False`` if some still do after
        ``timeout`` seconds."""
        return await self.applied.settled(timeout)

    def _owe_initials(self, role: str) -> None:
        if self.options.send_iips and self.initials.owe(role):
            self._spawn(self.initials.deadline(role, self.options.wait_timeout, self._lock))

    # -- reporting -------------------------------------------------------------------------

    def pending_roles(self) -> list[str]:
        return [
            name
            for name, node in self.nodes.items()
            if node.component not in VIRTUAL_COMPONENTS and not self.registry.count(name)
        ]

    def child_pids(self) -> dict[str, list[int]]:
        return self.supervisor.pids()
