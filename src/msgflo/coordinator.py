"""The coordinator: owns a running network and keeps it running.

It knows every participant from discovery (a registry that survives restarts through a state
file), starts and supervises the participants the library can start, turns graph edges into
bindings through :mod:`msgflo.wiring`, sends IIPs, and tells listeners what happens.

Unlike the original, nothing here waits for a participant: a node whose participant is late,
foreign, or unknown to the library stays *pending* and is wired the moment it announces itself.
Every change (discovery, graph edit) goes through one lock and one re-plan, so the order in
which participants appear never matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from msgflo.control import ControlClient
from msgflo.library import Library, LibraryError
from msgflo.participant import discovery_period
from msgflo.stderr_tail import StderrTail
from msgflo.transport import (
    Binding,
    BindingType,
    Broker,
    Message,
    QueueKind,
    TransportError,
)
from msgflo.transport.base import DataHandler
from msgflo.wiring import (
    VIRTUAL_COMPONENTS,
    Direction,
    Edge,
    GraphSpec,
    Initial,
    Planned,
    PortRef,
    Status,
    WiringError,
    bind,
    convention_resolver,
    describe_route,
    discovery_resolver,
    find_queue,
    plan,
    unbind,
)

log = logging.getLogger(__name__)

GONE_AFTER_PERIODS = 3
"""A participant silent for this many discovery periods is marked gone."""

STATE_FILE = "participants.json"


PR_SET_PDEATHSIG = 1


class CoordinatorError(Exception):
    """A graph operation that cannot be done; the message names the node, port or edge."""


# -- events -------------------------------------------------------------------------------


class EventKind(enum.StrEnum):
    PARTICIPANT_ADDED = "participant-added"
    PARTICIPANT_UPDATED = "participant-updated"
    PARTICIPANT_GONE = "participant-gone"
    PARTICIPANT_BACK = "participant-back"
    WIRED = "wired"
    UNWIRED = "unwired"
    IIP_SENT = "iip-sent"
    PROCESS_STARTED = "process-started"
    PROCESS_READY = "process-ready"
    PROCESS_EXITED = "process-exited"
    OUTPUT = "output"
    DATA = "data"
    GRAPH_CHANGED = "graph-changed"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Event:
    """What listeners get; ``message`` is a finished line a person can read."""

    kind: EventKind
    role: str = ""
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]
TapHandler = Callable[[PortRef, Any], Awaitable[None]]


# -- registry ----------------------------------------------------------------------------


class Change(enum.StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    BACK = "back"
    SEEN = "seen"


@dataclass(slots=True)
class Instance:
    """One participant process, known by its discovery ``id``."""

    id: str
    role: str
    component: str
    definition: dict[str, Any]
    first_seen: float
    last_seen: float
    gone: bool = False
    session: bool = False
    """Announced since this coordinator started (not only remembered from the state file)."""


def normalize_discovery(data: Any) -> tuple[dict[str, Any] | None, str]:
    """A usable definition from a discovery message, or ``None`` and why not.

    Accepts what real participants send: MicroFlo's extra keys, ``null`` where a string belongs,
    ports as an object instead of a list, a missing ``id`` (the role stands in) or a missing
    ``role`` (the id stands in).
    """
    if not isinstance(data, Mapping):
        return None, f"not a JSON object: {str(data)[:80]!r}"
    if data.get("protocol") != "discovery" or data.get("command") != "participant":
        return None, f"not a discovery message ({data.get('protocol')}:{data.get('command')})"
    payload = data.get("payload")
    if not isinstance(payload, Mapping):
        return None, "discovery message without a payload object"
    definition = dict(payload)
    role = _text(payload.get("role")) or _text(payload.get("id"))
    if not role:
        return None, "discovery message names neither role nor id"
    definition["role"] = role
    definition["id"] = _text(payload.get("id")) or role
    definition["component"] = _text(payload.get("component")) or role
    definition["label"] = _text(payload.get("label"))
    for key in ("inports", "outports"):
        ports = _ports(payload.get(key))
        if ports is None:
            return None, f"{key} is neither a list nor an object"
        definition[key] = ports
    return definition, ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _ports(raw: Any) -> list[dict[str, Any]] | None:
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        raw = [
            {"id": key, **(value if isinstance(value, Mapping) else {})}
            for key, value in raw.items()
        ]
    if not isinstance(raw, list):
        return None
    return [dict(p) for p in raw if isinstance(p, Mapping) and _text(p.get("id"))]


def _sender(data: Any) -> str:
    payload = data.get("payload") if isinstance(data, Mapping) else None
    if isinstance(payload, Mapping):
        for key in ("id", "role", "component"):
            if _text(payload.get(key)):
                return str(payload[key])
    return "an unnamed sender"


_WIRING_KEYS = ("component", "inports", "outports")


class Registry:
    """Participants by instance id; several instances may share a role."""

    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}

    def observe(self, definition: dict[str, Any], now: float) -> tuple[Instance, Change]:
        known = self.instances.get(definition["id"])
        if known is None:
            instance = Instance(
                id=definition["id"],
                role=definition["role"],
                component=definition["component"],
                definition=definition,
                first_seen=now,
                last_seen=now,
                session=True,
            )
            self.instances[instance.id] = instance
            return instance, Change.ADDED
        change = Change.SEEN
        if known.gone:
            change = Change.BACK
        elif any(known.definition.get(k) != definition.get(k) for k in _WIRING_KEYS):
            change = Change.UPDATED
        known.definition, known.component, known.role = (
            definition,
            definition["component"],
            definition["role"],
        )
        known.last_seen, known.gone, known.session = now, False, True
        return known, change

    def expire(self, now: float, silence: float) -> list[Instance]:
        gone = [i for i in self.instances.values() if not i.gone and now - i.last_seen > silence]
        for instance in gone:
            instance.gone = True
        return gone

    def of_role(self, role: str, *, live: bool = True) -> list[Instance]:
        return [i for i in self.instances.values() if i.role == role and not (live and i.gone)]

    def count(self, role: str) -> int:
        return len(self.of_role(role))

    def definitions(self) -> dict[str, dict[str, Any]]:
        """The newest definition per role, gone instances included: a participant that is away
        keeps its bindings, so what is sent to it waits in its queue."""
        newest: dict[str, Instance] = {}
        for instance in self.instances.values():
            current = newest.get(instance.role)
            if current is None or (current.gone, -current.last_seen) > (
                instance.gone,
                -instance.last_seen,
            ):
                newest[instance.role] = instance
        return {role: instance.definition for role, instance in newest.items()}

    def save(self, path: Path) -> None:
        """Atomically: a coordinator killed mid-write leaves the previous file intact."""
        path.parent.mkdir(parents=True, exist_ok=True)
        records = [asdict(i) for i in self.instances.values()]
        for record in records:
            del record["session"]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"version": 1, "participants": records}, out, indent=1)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: Path) -> Registry:
        registry = cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            for record in raw.get("participants", []):
                instance = Instance(**record)
                registry.instances[instance.id] = instance
        except FileNotFoundError:
            pass
        except (ValueError, TypeError, AttributeError, OSError) as exc:
            log.warning("ignoring unreadable state file %s: %s", path, exc)
            registry.instances.clear()
        return registry


# -- child processes ----------------------------------------------------------------------


@dataclass(slots=True)
class SupervisorOptions:
    broker_url: str
    concurrency: int = 10
    ready_timeout: float = 45.0
    stop_grace: float = 5.0
    max_failures: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    stable_after: float = 10.0
    """A child that ran this long before dying was working: its failure count starts over."""


def _die_with_parent() -> None:
    """Runs in the child before exec: if the coordinator dies without stopping it (SIGKILL, a
    crash), the kernel sends it SIGTERM, so no participant is left orphaned (Linux only)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One participant process: started, watched, restarted with backoff, stopped with its group."""

    def __init__(
        self,
        role: str,
        argv: Sequence[str],
        options: SupervisorOptions,
        emit: Listener,
        gate: asyncio.Semaphore,
    ) -> None:
        self.role = role
        self.argv = list(argv)
        self.options = options
        self.emit = emit
        self.gate = gate
        self.process: asyncio.subprocess.Process | None = None
        self.pids: list[int] = []
        self.stderr = StderrTail()
        self.failures = 0
        self.failed = False
        self.ready = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"child {self.role}"
        )

    async def _supervise(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            code = await self._run_once()
            if self._stopping:
                return
            ran = time.monotonic() - started
            self.failures = 1 if ran >= self.options.stable_after else self.failures + 1
            summary = self.stderr.summary()
            said = f": {summary}" if summary else ""
            if self.failures > self.options.max_failures:
                self.failed = True
                self.emit(
                    Event(
                        EventKind.ERROR,
                        self.role,
                        f"{self.role}: giving up on `{self.command}` after {self.failures - 1} restarts: {code}{said}",
                        {"command": self.argv},
                    )
                )
                return
            delay = min(
                self.options.backoff_base * 2 ** (self.failures - 1), self.options.backoff_max
            )
            self.emit(
                Event(
                    EventKind.PROCESS_EXITED,
                    self.role,
                    f"{self.role}: `{self.command}` {code}; restarting in {delay:g} s{said}",
                    {"command": self.argv, "delay": delay},
                )
            )
            await asyncio.sleep(delay)

    async def _run_once(self) -> str:
        """Run the command until it exits; returns how it ended, for messages."""
        env = {
            **os.environ,
            "MSGFLO_BROKER": self.options.broker_url,
            "PYTHONUNBUFFERED": "1",
            # The library's commands (msgflo-python, msgflo-script...) are installed beside the
            # interpreter running us: found even when that virtualenv is not activated.
            "PATH": os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))),
        }
        self.ready.clear()
        self.stderr.new_run()
        async with self.gate:
            try:
                self.process = await asyncio.create_subprocess_exec(
                    *self.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                return f"could not start: {exc.strerror or exc}"
            process = self.process
            self.pids.append(process.pid)
            self.emit(
                Event(
                    EventKind.PROCESS_STARTED,
                    self.role,
                    f"{self.role}: started pid {process.pid}: {self.command}",
                    {"pid": process.pid, "command": self.argv},
                )
            )
            assert process.stdout is not None and process.stderr is not None
            readers = [
                asyncio.create_task(self._read(process.stdout, "stdout")),
                asyncio.create_task(self._read(process.stderr, "stderr")),
            ]
            exited = asyncio.create_task(process.wait())
            ready = asyncio.create_task(self.ready.wait())
            await asyncio.wait(
                {exited, ready},
                timeout=self.options.ready_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            ready.cancel()
            if not self.ready.is_set() and not exited.done():
                self.emit(
                    Event(
                        EventKind.WARNING,
                        self.role,
                        f"{self.role}: no ready line from `{self.command}` after {self.options.ready_timeout:g} s; still waiting",
                    )
                )
        code = await exited
        await asyncio.gather(*readers)
        self.process = None
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    async def _read(self, stream: asyncio.StreamReader, name: str) -> None:
        while line := await stream.readline():
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if name == "stderr" and not self.stderr.add(text):
                continue
            if name == "stdout" and not self.ready.is_set():
                self.ready.set()
                self.emit(Event(EventKind.PROCESS_READY, self.role, f"{self.role}: ready: {text}"))
            self.emit(Event(EventKind.OUTPUT, self.role, text, {"stream": name}))

    async def stop(self) -> None:
        """SIGTERM to the child's process group, SIGKILL after the grace period."""
        self._stopping = True
        process = self.process
        if process is not None and process.returncode is None:
            self._signal(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), self.options.stop_grace)
            except TimeoutError:
                self._signal(process.pid, signal.SIGKILL)
                self.emit(
                    Event(
                        EventKind.WARNING,
                        self.role,
                        f"{self.role}: pid {process.pid} still running {self.options.stop_grace:g} s after SIGTERM; killed",
                    )
                )
            self._signal(process.pid, signal.SIGKILL)  # stragglers the child left in its group
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        process = self.process
        if process is not None:
            if process.returncode is None:
                self._signal(process.pid, signal.SIGKILL)
            await process.wait()

    @staticmethod
    def _signal(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


# -- the coordinator -------------------------------------------------------------------------


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


@dataclass(slots=True)
class Node:
    name: str
    component: str
    metadata: dict[str, Any] = field(default_factory=dict)


class Coordinator:
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
        self.state_file = self.options.state_dir / STATE_FILE if self.options.state_dir else None
        self.registry = Registry.load(self.state_file) if self.state_file else Registry()
        self.nodes: dict[str, Node] = {}
        self.edges: list[Edge] = []
        self.initials: list[Initial] = []
        self.wiring: dict[str, Planned] = {}
        self.children: dict[str, Child] = {}
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        self._warned: set[str] = set()
        self._watched: dict[Edge, tuple[Binding, Callable[[Binding, Any], Any]]] = {}
        self._taps: dict[PortRef, list[TapHandler]] = {}
        self._tapped: dict[PortRef, tuple[Binding, DataHandler]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._gate = asyncio.Semaphore(self.options.concurrency)
        self._last_save = 0.0
        self._rewired = asyncio.Condition()
        self._owed_initials: dict[str, int] = {}
        self.control = ControlClient(broker)
        self.attached: dict[Binding, set[str]] = {}
        """Edges whose consumers subscribe to the source themselves, by instance id."""
        self._no_control: set[str] = set()
        """Instances that did not answer a control request (Node, foreign): forward for them."""

    # -- listeners ----------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("coordinator listener failed on %s", event.kind)

    def _warn_once(
        self, key: str, message: str, kind: EventKind = EventKind.WARNING, role: str = ""
    ) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._emit(Event(kind, role, message))

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and listen for participants; the cached registry is usable at once."""
        await self.broker.connect()
        if not self.options.static:
            await self.broker.subscribe_participant_change(self._on_discovery)
        self._spawn(self._expire_loop())

    def _retire(self, child: Child) -> None:
        """Stop a child in the background; :meth:`stop` still waits for it, so a coordinator
        stopped meanwhile leaves no orphan."""
        task = asyncio.get_running_loop().create_task(child.stop())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def stop(self) -> None:
        """Stop every child this coordinator started, then disconnect."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(child.stop() for child in self.children.values()))
        self._save(force=True)
        with contextlib.suppress(TransportError):
            await self.broker.disconnect()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire_loop(self) -> None:
        silence = GONE_AFTER_PERIODS * self.options.discovery_period
        while True:
            await asyncio.sleep(max(self.options.discovery_period / 2, 0.05))
            for instance in self.registry.expire(time.time(), silence):
                self._emit(
                    Event(
                        EventKind.PARTICIPANT_GONE,
                        instance.role,
                        f"{instance.role}: participant {instance.id} gone (silent for {silence:g} s)",
                        {"id": instance.id},
                    )
                )
                self._save(force=True)

    def _save(self, *, force: bool = False) -> None:
        if self.state_file is None:
            return
        now = time.monotonic()
        if not force and now - self._last_save < self.options.discovery_period / 2:
            return
        self._last_save = now
        try:
            self.registry.save(self.state_file)
        except OSError as exc:
            self._warn_once(f"state {exc}", f"cannot write state file {self.state_file}: {exc}")

    # -- discovery ----------------------------------------------------------------------

    async def _on_discovery(self, message: Message) -> None:
        definition, why = normalize_discovery(message.data)
        if definition is None:
            sender = _sender(message.data)
            self._warn_once(f"malformed {sender} {why}", f"ignoring discovery from {sender}: {why}")
            return
        await self.observe(definition)

    async def observe(self, definition: dict[str, Any]) -> None:
        """Take in one (normalized) discovery definition."""
        async with self._lock:
            instance, change = self.registry.observe(definition, time.time())
            role = instance.role
            if self.library is not None:
                with contextlib.suppress(LibraryError):
                    self.library.update_from_discovery(definition)
            count = self.registry.count(role)
            if change is Change.ADDED:
                self._emit(
                    Event(
                        EventKind.PARTICIPANT_ADDED,
                        role,
                        f"{role}: participant {instance.id} ({instance.component}) discovered, {count} running",
                        {"id": instance.id, "count": count},
                    )
                )
            elif change is Change.UPDATED:
                self._emit(
                    Event(
                        EventKind.PARTICIPANT_UPDATED,
                        role,
                        f"{role}: participant {instance.id} announced new ports",
                        {"id": instance.id},
                    )
                )
            elif change is Change.BACK:
                self._emit(
                    Event(
                        EventKind.PARTICIPANT_BACK,
                        role,
                        f"{role}: participant {instance.id} is back",
                        {"id": instance.id},
                    )
                )
            self._save(force=change is not Change.SEEN)
            if change is Change.SEEN:
                return
            if change is Change.ADDED and role in self.nodes:
                self._owe_initials(role)
            if change is Change.ADDED:
                await self._attach_new_instance(instance)
            await self._rewire()

    def discovered(self, role: str) -> bool:
        return any(i.session for i in self.registry.of_role(role))

    # -- graph ---------------------------------------------------------------------------

    @property
    def graph(self) -> GraphSpec:
        return GraphSpec(
            processes={name: node.component for name, node in self.nodes.items()},
            edges=list(self.edges),
            initials=list(self.initials),
        )

    async def load_graph(self, graph: Mapping[str, Any] | GraphSpec) -> None:
        """Replace the network's graph; returns once what can be wired now is wired.

        Participants are started in the background and nodes that are not discovered yet stay
        pending: a late or absent participant never blocks or fails the load.
        """
        spec = graph if isinstance(graph, GraphSpec) else GraphSpec.from_json(graph)
        metadata = {} if isinstance(graph, GraphSpec) else graph.get("processes") or {}
        async with self._lock:
            for role in [r for r in self.children if r not in spec.processes]:
                self._retire(self.children.pop(role))
            self.nodes = {
                name: Node(name, component, dict((metadata.get(name) or {}).get("metadata") or {}))
                for name, component in spec.processes.items()
            }
            self.edges = list(spec.edges)
            self.initials = list(spec.initials)
            for name in spec.participant_roles():
                self._start_node(self.nodes[name])
            self._owed_initials.clear()
            for role in {i.tgt.process for i in self.initials}:
                if self.discovered(role):
                    self._owe_initials(role)
            await self._rewire()
        self._emit(Event(EventKind.GRAPH_CHANGED, message="graph loaded"))

    def _start_node(self, node: Node) -> None:
        role, component = node.name, node.component
        if component in VIRTUAL_COMPONENTS or role in self.children:
            return
        self._spawn(self._watch_pending(role))
        if not self.options.start_participants:
            return
        if role in self.options.ignore:
            self._emit(
                Event(
                    EventKind.INFO,
                    role,
                    f"{role}: ignored (--ignore), waiting for it to announce itself",
                )
            )
            return
        found = self.library.find(component) if self.library is not None else None
        if found is None:
            self._warn_once(
                f"unknown {role} {component}",
                f"{role}: component {component!r} is not in the library; waiting for a participant to announce role {role}",
                role=role,
            )
            return
        if not found.startable:
            self._emit(
                Event(
                    EventKind.INFO,
                    role,
                    f"{role}: {component} runs elsewhere (foreign); waiting for it to announce itself",
                )
            )
            return
        assert self.library is not None
        iips = (
            {i.tgt.port: i.data for i in self.initials if i.tgt.process == role}
            if self.options.iips_in_command
            else {}
        )
        try:
            argv = self.library.command_args(component, role, iips)
            if self.options.shell:
                argv = [self.options.shell, "-c", shlex.join(argv)]
        except LibraryError as exc:
            self._warn_once(f"command {role}", f"{role}: {exc}", EventKind.ERROR, role)
            return
        child = Child(
            role,
            argv,
            SupervisorOptions(
                broker_url=self.options.broker_url,
                concurrency=self.options.concurrency,
                ready_timeout=self.options.wait_timeout,
                stop_grace=self.options.stop_grace,
                max_failures=self.options.max_failures,
                backoff_base=self.options.backoff_base,
            ),
            self._emit,
            self._gate,
        )
        self.children[role] = child
        child.start()

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

    async def add_node(
        self, name: str, component: str, metadata: Mapping[str, Any] | None = None
    ) -> None:
        async with self._lock:
            if name in self.nodes:
                raise CoordinatorError(f"node {name!r} already exists")
            node = self.nodes[name] = Node(name, component, dict(metadata or {}))
            self._start_node(node)
            await self._rewire()
        self._emit(Event(EventKind.GRAPH_CHANGED, name, f"node {name} added"))

    async def remove_node(self, name: str) -> None:
        """Removes the node with its edges and IIPs, and stops its participant if we started it."""
        async with self._lock:
            if name not in self.nodes:
                raise CoordinatorError(f"no node {name!r} in the graph")
            del self.nodes[name]
            self.edges = [e for e in self.edges if name not in (e.src.process, e.tgt.process)]
            self.initials = [i for i in self.initials if i.tgt.process != name]
            child = self.children.pop(name, None)
            await self._rewire()
        if child is not None:
            await child.stop()
        self._emit(Event(EventKind.GRAPH_CHANGED, name, f"node {name} removed"))

    def _require_port(self, ref: PortRef, direction: Direction) -> None:
        if ref.process not in self.nodes:
            raise CoordinatorError(f"no node {ref.process!r} in the graph")
        definition = self.registry.definitions().get(ref.process)
        if definition is not None and self.nodes[ref.process].component not in VIRTUAL_COMPONENTS:
            try:
                find_queue(definition, direction, ref.port)
            except WiringError as exc:
                raise CoordinatorError(str(exc)) from None

    async def add_edge(self, src: PortRef, tgt: PortRef) -> Planned:
        """Connect two ports; returns the edge's wiring (pending until both are discovered)."""
        edge = Edge(src, tgt)
        async with self._lock:
            self._require_port(src, Direction.OUT)
            self._require_port(tgt, Direction.IN)
            if edge in self.edges:
                raise CoordinatorError(f"edge {edge} already exists")
            self.edges.append(edge)
            await self._rewire()
            planned = self.planned(edge)
        self._emit(Event(EventKind.GRAPH_CHANGED, message=f"edge {edge} added"))
        return planned

    async def remove_edge(self, src: PortRef, tgt: PortRef) -> None:
        edge = Edge(src, tgt)
        async with self._lock:
            if edge not in self.edges:
                raise CoordinatorError(f"no edge {edge} in the graph")
            self.edges.remove(edge)
            await self._unwatch(edge)
            await self._rewire()
        self._emit(Event(EventKind.GRAPH_CHANGED, message=f"edge {edge} removed"))

    async def add_initial(self, tgt: PortRef, data: Any) -> None:
        """Store the IIP and send it now if its target runs; new instances get it too."""
        async with self._lock:
            self._require_port(tgt, Direction.IN)
            initial = Initial(data, tgt)
            self.initials.append(initial)
            if self.discovered(tgt.process):
                await self._send(initial)
        self._emit(Event(EventKind.GRAPH_CHANGED, message=f"IIP to {tgt} added"))

    async def remove_initial(self, tgt: PortRef) -> None:
        async with self._lock:
            before = len(self.initials)
            self.initials = [i for i in self.initials if i.tgt != tgt]
            if len(self.initials) == before:
                raise CoordinatorError(f"no IIP to {tgt} in the graph")
        self._emit(Event(EventKind.GRAPH_CHANGED, message=f"IIP to {tgt} removed"))

    def planned(self, edge: Edge) -> Planned:
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
        """Apply the difference between the current plan and what is bound."""
        fresh = {p.key: p for p in plan(self.graph, self._resolver())}
        for key, bound in list(self.wiring.items()):
            new = fresh.get(key)
            if bound.binding is not None and (new is None or new.binding != bound.binding):
                with contextlib.suppress(TransportError):
                    await self._unbind(bound.binding)
                if new is None:
                    self._emit(
                        Event(EventKind.UNWIRED, message=f"unwired {key}", data={"key": key})
                    )
        for key, planned in list(fresh.items()):
            old = self.wiring.get(key)
            current = planned
            if planned.binding is not None and (old is None or old.binding != planned.binding):
                try:
                    await self._bind(planned.binding)
                except TransportError as exc:
                    current = fresh[key] = Planned(
                        key, planned.edges, Status.ERROR, None, f"{key}: {exc}"
                    )
            if old is not None and (old.status, old.binding) == (current.status, current.binding):
                continue
            if current.status in (Status.BOUND, Status.CONNECTED):
                binding = current.binding
                how = current.detail or (
                    describe_route(binding, binding in self.attached) if binding else ""
                )
                self._emit(Event(EventKind.WIRED, message=f"wired {key}: {how}", data={"key": key}))
            elif current.status is Status.ERROR:
                self._warn_once(f"wiring {current.detail}", current.detail, EventKind.ERROR)
        self.wiring = fresh
        await self._apply_taps()
        await self._pay_initials()
        async with self._rewired:
            self._rewired.notify_all()

    async def _bind(self, binding: Binding) -> None:
        """Ask our participants to consume the source themselves where the transport allows
        it (MQTT), so data does not pass through this process; otherwise bind on the broker."""
        if self._may_attach(binding):
            targets = self._consumers_of(binding.tgt)
            if targets and await self._attach_all(binding, targets):
                self.attached[binding] = {instance_id for instance_id, _ in targets}
                return
        await bind(self.broker, binding, declare=self.options.static)

    async def _unbind(self, binding: Binding) -> None:
        attached = self.attached.pop(binding, None)
        if attached is None:
            await unbind(self.broker, binding)
            return
        live = [(i, p) for i, p in self._consumers_of(binding.tgt) if i in attached]
        staying = [t for t in live if self.registry.instances[t[0]].role in self.nodes]
        leaving = [t for t in live if t not in staying]
        if leaving:
            # Their node left the graph (and is being stopped if we started it): they may never
            # answer, and nothing waits for them while the graph changes.
            self._spawn(self._ask_all("detach", binding, leaving))
        await self._ask_all("detach", binding, staying)

    def _may_attach(self, binding: Binding) -> bool:
        return (
            self.broker.supports_attach
            and not self.options.static
            and binding.type is BindingType.PUBSUB
            and bool(binding.src)
        )

    def _consumers_of(self, queue: str) -> list[tuple[str, str]]:
        """(instance id, inport) of every live participant consuming ``queue``."""
        return [
            (instance.id, port["id"])
            for instance in self.registry.instances.values()
            if not instance.gone
            for port in instance.definition.get("inports", [])
            if port.get("queue") == queue
        ]

    async def _ask_all(
        self, command: str, binding: Binding, targets: Sequence[tuple[str, str]]
    ) -> list[bool]:
        asks = [self.control.ask(i, command, port, binding.src) for i, port in targets]
        answers = list(await asyncio.gather(*asks))
        for (instance_id, _), answered in zip(targets, answers, strict=True):
            if not answered:
                self._no_control.add(instance_id)
        return answers

    async def _attach_all(self, binding: Binding, targets: Sequence[tuple[str, str]]) -> bool:
        if any(instance_id in self._no_control for instance_id, _ in targets):
            return False
        answers = await self._ask_all("attach", binding, targets)
        if all(answers):
            return True
        done = [target for target, answered in zip(targets, answers, strict=True) if answered]
        await self._ask_all("detach", binding, done)
        return False

    async def _attach_new_instance(self, instance: Instance) -> None:
        """A new instance of a role whose input is attached must attach too, or the edge goes
        back to forwarding for every instance (mixing both would deliver twice)."""
        queues = {p.get("queue") for p in instance.definition.get("inports", [])}
        for binding, attached in list(self.attached.items()):
            if binding.tgt not in queues:
                continue
            targets = [(i, p) for i, p in self._consumers_of(binding.tgt) if i == instance.id]
            if await self._attach_all(binding, targets):
                attached.add(instance.id)
                how = f"{instance.id} takes {binding.src} itself"
            else:
                del self.attached[binding]
                others = [(i, p) for i, p in self._consumers_of(binding.tgt) if i in attached]
                await self._ask_all("detach", binding, others)
                await bind(self.broker, binding)
                how = f"{instance.id} cannot be asked; forwarding {binding.src} -> {binding.tgt}"
            self._emit(Event(EventKind.WIRED, instance.role, how, {"id": instance.id}))

    async def settled(self, timeout: float) -> bool:
        """Wait until no edge waits for a participant; ``False`` if some still do after
        ``timeout`` seconds."""

        def done() -> bool:
            return all(p.status is not Status.PENDING for p in self.wiring.values())

        async def until() -> None:
            async with self._rewired:
                await self._rewired.wait_for(done)

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            return False
        return True

    def _owe_initials(self, role: str) -> None:
        """One more instance of ``role`` is to get the role's IIPs.

        They are held until everything downstream of ``role`` is wired, since what the
        participant sends in reply would otherwise go to an unbound exchange and be lost; after
        ``wait_timeout`` they go anyway.
        """
        if not self.options.send_iips or not any(i.tgt.process == role for i in self.initials):
            return
        self._owed_initials[role] = self._owed_initials.get(role, 0) + 1
        self._spawn(self._initials_deadline(role))

    async def _initials_deadline(self, role: str) -> None:
        await asyncio.sleep(self.options.wait_timeout)
        async with self._lock:
            if self._owed_initials.get(role):
                self._emit(
                    Event(
                        EventKind.WARNING,
                        role,
                        f"{role}: sending its IIPs although some of its downstream edges are "
                        "still pending",
                    )
                )
                await self._pay_initials(force=role)

    async def _pay_initials(self, force: str | None = None) -> None:
        for role, count in list(self._owed_initials.items()):
            if role != force and not self._downstream_wired(role):
                continue
            del self._owed_initials[role]
            for _ in range(count):
                for initial in [i for i in self.initials if i.tgt.process == role]:
                    await self._send(initial)

    def _downstream_wired(self, role: str) -> bool:
        seen, todo = {role}, [role]
        while todo:
            current = todo.pop()
            for planned in self.wiring.values():
                if not any(e.src.process == current for e in planned.edges):
                    continue
                if planned.status is Status.PENDING:
                    return False
                for edge in planned.edges:
                    if edge.tgt.process not in seen:
                        seen.add(edge.tgt.process)
                        todo.append(edge.tgt.process)
        return True

    async def _send(self, initial: Initial) -> None:
        role, port = initial.tgt.process, initial.tgt.port
        definition = self.registry.definitions().get(role)
        if definition is None:
            return
        try:
            queue = find_queue(definition, Direction.IN, port)
            await self.broker.send_to(QueueKind.IN, queue, initial.data)
        except (WiringError, TransportError) as exc:
            self._warn_once(
                f"iip {role} {port} {exc}", f"IIP to {initial.tgt}: {exc}", EventKind.ERROR, role
            )
            return
        self._emit(
            Event(
                EventKind.IIP_SENT,
                role,
                f"IIP sent to {initial.tgt}",
                {"queue": queue, "port": port, "data": initial.data},
            )
        )

    async def send(self, tgt: PortRef, data: Any) -> None:
        """Send ``data`` to an inport of a discovered participant (what an FBP client sends
        into an exported inport)."""
        definition = self.registry.definitions().get(tgt.process)
        if definition is None:
            raise CoordinatorError(f"{tgt.process} has not announced itself yet")
        try:
            queue = find_queue(definition, Direction.IN, tgt.port)
            await self.broker.send_to(QueueKind.IN, queue, data)
        except (WiringError, TransportError) as exc:
            raise CoordinatorError(f"cannot send to {tgt}: {exc}") from None

    # -- taps ------------------------------------------------------------------------------

    async def tap(self, ref: PortRef, handler: TapHandler) -> None:
        """Call ``handler(ref, data)`` for everything the outport ``ref`` sends, from the moment
        its participant is known; taps are applied before IIPs go out, so none of their
        consequences is missed."""
        async with self._lock:
            self._taps.setdefault(ref, []).append(handler)
            await self._apply_taps()

    async def untap(self, ref: PortRef, handler: TapHandler) -> None:
        async with self._lock:
            handlers = self._taps.get(ref, [])
            if handler in handlers:
                handlers.remove(handler)
            if not handlers:
                self._taps.pop(ref, None)
            await self._apply_taps()

    async def _apply_taps(self) -> None:
        """Subscribe what is tapped and known, follow a participant that changed its queue."""
        definitions = self.registry.definitions()

        def queue_of(ref: PortRef) -> str | None:
            definition = definitions.get(ref.process)
            try:
                return (
                    None if definition is None else find_queue(definition, Direction.OUT, ref.port)
                )
            except WiringError:
                return None

        for ref, (binding, observer) in list(self._tapped.items()):
            if ref not in self._taps or queue_of(ref) != binding.src:
                del self._tapped[ref]
                with contextlib.suppress(TransportError):
                    await self.broker.unsubscribe_data(binding, observer)
        for ref in self._taps:
            queue = queue_of(ref)
            if ref in self._tapped or queue is None:
                continue
            binding = Binding(queue, queue)

            async def observer(_binding: Binding, data: Any, ref: PortRef = ref) -> None:
                for handler in list(self._taps.get(ref, [])):
                    try:
                        await handler(ref, data)
                    except Exception:
                        log.exception("tap on %s failed", ref)

            try:
                await self.broker.subscribe_data(binding, observer)
            except TransportError as exc:
                self._warn_once(f"tap {ref} {exc}", f"cannot observe {ref}: {exc}", EventKind.ERROR)
                continue
            self._tapped[ref] = (binding, observer)

    # -- edge data -------------------------------------------------------------------------

    async def watch_edge(self, edge: Edge) -> None:
        """Report the data passing ``edge`` as :attr:`EventKind.DATA` events (``network:data``)."""
        async with self._lock:
            planned = self.planned(edge)
            if edge in self._watched:
                return
            queue = self._edge_source(edge, planned)
            binding = Binding(src=queue, tgt=planned.binding.tgt if planned.binding else queue)

            async def report(_binding: Binding, data: Any) -> None:
                self._emit(
                    Event(
                        EventKind.DATA,
                        edge.src.process,
                        f"{edge}: {str(data)[:80]}",
                        {"edge": edge, "data": data},
                    )
                )

            await self.broker.subscribe_data(binding, report)
            self._watched[edge] = (binding, report)

    def _edge_source(self, edge: Edge, planned: Planned) -> str:
        if planned.status not in (Status.BOUND, Status.CONNECTED):
            raise CoordinatorError(f"edge {edge} is not wired yet ({planned.detail})")
        definition = self.registry.definitions().get(edge.src.process)
        if definition is None:
            raise CoordinatorError(f"edge {edge}: {edge.src.process} not discovered")
        return find_queue(definition, Direction.OUT, edge.src.port)

    async def unwatch_edge(self, edge: Edge) -> None:
        async with self._lock:
            await self._unwatch(edge)

    async def _unwatch(self, edge: Edge) -> None:
        watched = self._watched.pop(edge, None)
        if watched is not None:
            await self.broker.unsubscribe_data(*watched)

    # -- reporting -------------------------------------------------------------------------

    def pending_roles(self) -> list[str]:
        return [
            name
            for name, node in self.nodes.items()
            if node.component not in VIRTUAL_COMPONENTS and not self.registry.count(name)
        ]

    def child_pids(self) -> dict[str, list[int]]:
        return {role: list(child.pids) for role, child in self.children.items()}
