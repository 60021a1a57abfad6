"""Process supervision: the participants a coordinator starts, kept running and stopped.

A child that dies is restarted with exponential backoff, and given up after
``max_failures`` quick deaths; one that ran for ``stable_after`` seconds starts its count over.
Each child runs in its own process group (stopped as a group, so a shell wrapper leaves no
stragglers) and gets SIGTERM from the kernel if the coordinator dies without stopping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msgflo.coordinator.events import Event, EventKind, Events, Listener
from msgflo.library import Library, LibraryError
from msgflo.stderr_tail import StderrTail

PR_SET_PDEATHSIG = 1


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
        index: int = 1,
        exited: Callable[[str, float], None] = lambda role, since: None,
    ) -> None:
        self.role = role
        self.index = index
        self.label = role if index == 1 else f"{role}[{index}]"
        """How messages name this instance: the role, with its number from the second on."""
        self.exited = exited
        """Told ``(role, started)`` (wall time) each time the command ends, before any
        restart: what that process announced is gone at once."""
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
            self._supervise(), name=f"child {self.label}"
        )

    async def _supervise(self) -> None:
        while not self._stopping:
            started, since = time.monotonic(), time.time()
            code = await self._run_once()
            self.exited(self.role, since)
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
                        f"{self.label}: giving up on `{self.command}` after {self.failures - 1} restarts: {code}{said}",
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
                    f"{self.label}: `{self.command}` {code}; restarting in {delay:g} s{said}",
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
                    f"{self.label}: started pid {process.pid}: {self.command}",
                    {"pid": process.pid, "command": self.argv, "instance": self.index},
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
                        f"{self.label}: no ready line from `{self.command}` after {self.options.ready_timeout:g} s; still waiting",
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
                self.emit(Event(EventKind.PROCESS_READY, self.role, f"{self.label}: ready: {text}"))
            self.emit(
                Event(EventKind.OUTPUT, self.role, text, {"stream": name, "label": self.label})
            )

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
                        f"{self.label}: pid {process.pid} still running {self.options.stop_grace:g} s after SIGTERM; killed",
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


class Instances:
    """The processes of one role: ``count`` copies of one command, consuming the same inqueue
    (competing consumers), each with its own restart policy.

    A copy that was given up still counts: the scaler must not replace a crashing copy with a
    fresh one that crashes the same way, so it scales on slots, not on live processes.
    Scaling down stops the copies that do least first: given up, then not ready, then newest.
    """

    def __init__(
        self,
        role: str,
        argv: Sequence[str],
        options: SupervisorOptions,
        emit: Listener,
        gate: asyncio.Semaphore,
        exited: Callable[[str, float], None] = lambda role, since: None,
    ) -> None:
        self.role = role
        self.argv = list(argv)
        self.options = options
        self.emit = emit
        self.gate = gate
        self.exited = exited
        self.children: list[Child] = []
        self._started: list[Child] = []
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def count(self) -> int:
        return len(self.children)

    @property
    def failed(self) -> bool:
        """Every copy was given up (a role with none running)."""
        return bool(self.children) and all(child.failed for child in self.children)

    @property
    def pids(self) -> list[int]:
        """Every process started for the role, stopped ones included (in start order)."""
        return [pid for child in self._started for pid in child.pids]

    def scale(self, count: int) -> None:
        """Start or stop copies until ``count`` run; stopping happens in the background."""
        while len(self.children) < count:
            used = {child.index for child in self.children}
            index = next(n for n in range(1, len(used) + 2) if n not in used)
            child = Child(
                self.role, self.argv, self.options, self.emit, self.gate, index, self.exited
            )
            self.children.append(child)
            self._started.append(child)
            child.start()
        surplus = len(self.children) - count
        if surplus <= 0:
            return
        order = sorted(self.children, key=lambda c: (not c.failed, c.ready.is_set(), -c.index))
        for child in order[:surplus]:
            self.children.remove(child)
            task = asyncio.get_running_loop().create_task(child.stop())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def stop(self) -> None:
        children, self.children = self.children, []
        await asyncio.gather(*(child.stop() for child in children), *self._retiring)


class Supervisor:
    """The processes of one coordinator, by role: one command per role, run ``instances``
    times (one unless told otherwise)."""

    def __init__(
        self,
        library: Library | None,
        options: SupervisorOptions,
        events: Events,
        *,
        ignore: Sequence[str] = (),
        shell: str | None = None,
        exited: Callable[[str, float], None] = lambda role, since: None,
        instances: Mapping[str, int] | None = None,
    ) -> None:
        self.library = library
        self.exited = exited
        self.ignore = ignore
        self.shell = shell
        """Run each command as ``SHELL -c COMMAND`` (``msgflo-setup --shell``)."""
        self.instances = dict(instances or {})
        """How many copies of a role to start with (``--autoscale``: its ``min``, at least 1)."""
        self.options = options
        self.events = events
        self.children: dict[str, Instances] = {}
        self._gate = asyncio.Semaphore(options.concurrency)
        self._retiring: set[asyncio.Task[None]] = set()

    def start(self, role: str, component: str, *, iips: Mapping[str, Any]) -> None:
        """Start ``role`` if the library can; otherwise say why the node waits to be announced."""
        if role in self.children:
            return
        if role in self.ignore:
            self.events.emit(
                Event(
                    EventKind.INFO,
                    role,
                    f"{role}: ignored (--ignore), waiting for it to announce itself",
                )
            )
            return
        found = self.library.find(component) if self.library is not None else None
        if found is None:
            self.events.warn_once(
                f"unknown {role} {component}",
                f"{role}: component {component!r} is not in the library; waiting for a participant to announce role {role}",
                role=role,
            )
            return
        if not found.startable:
            self.events.emit(
                Event(
                    EventKind.INFO,
                    role,
                    f"{role}: {component} runs elsewhere (foreign); waiting for it to announce itself",
                )
            )
            return
        assert self.library is not None
        try:
            argv = self.library.command_args(component, role, dict(iips))
            if self.shell:
                argv = [self.shell, "-c", shlex.join(argv)]
        except LibraryError as exc:
            self.events.warn_once(f"command {role}", f"{role}: {exc}", EventKind.ERROR, role)
            return
        group = Instances(role, argv, self.options, self.events.emit, self._gate, self.exited)
        self.children[role] = group
        group.scale(self.instances.get(role, 1))

    def count(self, role: str) -> int | None:
        """Copies of ``role`` kept running, or ``None`` for a role this supervisor does not run."""
        group = self.children.get(role)
        return None if group is None else group.count

    def scale(self, role: str, count: int) -> None:
        group = self.children.get(role)
        if group is not None:
            group.scale(count)

    def retire(self, role: str) -> None:
        """Stop a role's processes in the background; :meth:`stop` still waits for them, so a
        coordinator stopped meanwhile leaves no orphan."""
        group = self.children.pop(role, None)
        if group is None:
            return
        task = asyncio.get_running_loop().create_task(group.stop())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def stop(self) -> None:
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await asyncio.gather(*(group.stop() for group in self.children.values()))

    def pids(self) -> dict[str, list[int]]:
        return {role: group.pids for role, group in self.children.items()}
