"""Who is in the network: participants that announce themselves are taken in (then wired), and
those that fall silent, whose process exits or whose node leaves the graph are counted gone.

These are methods of :class:`~msgflo.coordinator.coordinator.Coordinator` (it derives from
:class:`Membership`), kept apart as :class:`~msgflo.coordinator.edits.GraphEdits` is: each
change takes the coordinator's lock and ends with one re-plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from msgflo.coordinator.events import CoordinatorError, Event, EventKind
from msgflo.coordinator.registry import (
    Change,
    Instance,
    Registry,
    StateFile,
    change_event,
    normalize_discovery,
    winner_event,
)
from msgflo.library import Library, LibraryError
from msgflo.transport.envelope import DiscoveryPayload

if TYPE_CHECKING:
    from msgflo.coordinator.binder import Binder
    from msgflo.coordinator.coordinator import CoordinatorOptions
    from msgflo.coordinator.discovery import Arrivals, Discovery
    from msgflo.coordinator.edits import Role


class Core(Protocol):
    """What taking participants in and counting them gone needs of the coordinator."""

    library: Library | None
    options: CoordinatorOptions
    registry: Registry
    state: StateFile
    nodes: dict[str, Role]
    binder: Binder
    arrivals: Arrivals
    discovery: Discovery
    _lock: asyncio.Lock

    def _emit(self, event: Event) -> None: ...
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...
    def _owe_initials(self, role: str) -> None: ...
    def _forget(self) -> None: ...
    def _gone(self, instances: Sequence[Instance], why: str) -> None: ...
    def _report_gone(self, instances: Sequence[Instance], why: str) -> None: ...
    async def _replan(self) -> None: ...
    async def _rewire(self) -> None: ...


class Membership:
    """Participants coming and going; see the module docstring."""

    async def observe(self: Core, definition: Mapping[str, Any]) -> None:
        """Take in one discovery definition, checked as one that arrives on the discovery
        channel is; returns once it is wired."""
        envelope = {"protocol": "discovery", "command": "participant", "payload": definition}
        checked, why = normalize_discovery(envelope)
        if checked is None:
            raise CoordinatorError(why)
        done = self.arrivals.add(checked, wait=True)
        assert done is not None
        await done

    async def _take_in(self: Core, definitions: list[DiscoveryPayload]) -> None:
        """Take in the definitions that arrived together, then re-plan once for all of them."""
        async with self._lock:
            changed = False
            added: list[Instance] = []
            for definition in definitions:
                instance, change = self.registry.observe(definition, time.time())
                if self.library is not None:
                    with contextlib.suppress(LibraryError):
                        self.library.update_from_discovery(definition)
                event = change_event(instance, change, self.registry.count(instance.role))
                if event is not None:
                    self._emit(event)
                if change is Change.SEEN:
                    continue
                changed = True
                if change is Change.ADDED:
                    if instance.role in self.nodes:
                        self._owe_initials(instance.role)
                    added.append(instance)
            self.state.save(force=changed)
            if not changed:
                return
            for instance in added:
                await self.binder.attach_new_instance(instance)
            said = winner_event(self.registry, instance.role)
            if said is not None:
                self._emit(said)
            await self._rewire()

    def _take_in_failed(self: Core, exc: Exception) -> None:
        self._emit(Event(EventKind.ERROR, message=f"cannot take in discovery: {exc}"))

    async def request_discovery(self: Core) -> bool:
        """Ask the running participants to announce themselves now (an FBP client listing
        components, a user who wants the picture at once); rate-limited."""
        return False if self.options.static else await self.discovery.request()

    def discovered(self: Core, role: str) -> bool:
        return self.registry.discovered(role)

    def _expired(self: Core, instances: Sequence[Instance], silence: float) -> None:
        self._gone(instances, f"silent for {silence:g} s")

    def _child_exited(self: Core, role: str, since: float) -> None:
        """A process we started has ended: what it announced is gone now, not after a silence
        (counts never include a child we saw exit)."""
        self._gone(self.registry.exited(role, since), "its process exited")

    def _gone(self: Core, instances: Sequence[Instance], why: str) -> None:
        """Report each, then re-plan: an edge wired for a gone instance follows the role's
        live instances, and the registry forgets what no wiring needs."""
        self._report_gone(instances, why)
        if instances:
            self._spawn(self._replan())

    def _report_gone(self: Core, instances: Sequence[Instance], why: str) -> None:
        for instance in instances:
            self._emit(
                Event(
                    EventKind.PARTICIPANT_GONE,
                    instance.role,
                    f"{instance.role}: participant {instance.id} gone ({why})",
                    {"id": instance.id},
                )
            )

    async def _replan(self: Core) -> None:
        async with self._lock:
            self._forget()
            await self._rewire()
        self.state.save(force=True)
