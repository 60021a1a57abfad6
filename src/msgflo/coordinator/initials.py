"""Initial packets (IIPs) owed to the roles of a graph.

A role is owed its IIPs once per instance that announces itself.  They are held until
everything downstream of the role is wired, since what the participant sends in reply would
otherwise go to an unbound exchange and be lost; the coordinator sends them anyway after its
``wait_timeout``.  A node whose component the library does not know (a typo, most often) and
that has not announced itself is not waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from msgflo.coordinator.events import Event, EventKind, Events
from msgflo.coordinator.registry import Registry
from msgflo.transport import Broker, QueueKind, TransportError
from msgflo.wiring import Direction, InitialPacket, Planned, Status, WiringError, find_queue


class Initials:
    """The graph's IIPs, and how many rounds of them each role is still owed."""

    def __init__(
        self,
        broker: Broker,
        registry: Registry,
        events: Events,
        wiring: Callable[[], Mapping[str, Planned]],
        awaited: Callable[[str], bool] = lambda role: True,
    ) -> None:
        self.broker = broker
        self._wiring = wiring
        self._awaited = awaited
        """Whether a role that has not announced itself is worth holding IIPs for: not one
        whose component the library does not know (a typo would hold them for the whole
        ``wait_timeout``)."""
        self.registry = registry
        self.events = events
        self.packets: list[InitialPacket] = []
        self._owed: dict[str, int] = {}

    def to(self, role: str) -> list[InitialPacket]:
        return [i for i in self.packets if i.tgt.process == role]

    def owe(self, role: str) -> bool:
        """One more instance of ``role`` is to get the role's IIPs; ``True`` when it has any."""
        if not self.to(role):
            return False
        self._owed[role] = self._owed.get(role, 0) + 1
        return True

    async def deadline(self, role: str, wait: float, lock: asyncio.Lock) -> None:
        """After ``wait`` seconds, send what ``role`` is still owed whatever is pending."""
        await asyncio.sleep(wait)
        async with lock:
            if self._owed.get(role):
                self.events.emit(
                    Event(
                        EventKind.WARNING,
                        role,
                        f"{role}: sending its IIPs although some of its downstream edges are "
                        "still pending",
                    )
                )
                await self.pay(force=role)

    def forget_owed(self) -> None:
        self._owed.clear()

    async def pay(self, force: str | None = None) -> None:
        """Send what is owed to every role whose downstream is wired (and to ``force``)."""
        wiring = self._wiring()
        for role, count in list(self._owed.items()):
            if role != force and not downstream_wired(role, wiring, self._waits_for):
                continue
            del self._owed[role]
            for _ in range(count):
                for initial in self.to(role):
                    await self.send(initial)

    def _waits_for(self, role: str) -> bool:
        return not self.registry.count(role) and self._awaited(role)

    async def send(self, initial: InitialPacket) -> None:
        role, port = initial.tgt.process, initial.tgt.port
        definition = self.registry.definitions().get(role)
        if definition is None:
            return
        try:
            queue = find_queue(definition, Direction.IN, port)
            await self.broker.send_to(QueueKind.IN, queue, initial.data)
        except (WiringError, TransportError) as exc:
            self.events.warn_once(
                f"iip {role} {port} {exc}", f"IIP to {initial.tgt}: {exc}", EventKind.ERROR, role
            )
            return
        self.events.emit(
            Event(
                EventKind.IIP_SENT,
                role,
                f"IIP sent to {initial.tgt}",
                {"queue": queue, "port": port, "data": initial.data},
            )
        )


def downstream_wired(
    role: str, wiring: Mapping[str, Planned], waits_for: Callable[[str], bool]
) -> bool:
    """Whether no edge reachable from ``role`` still waits for a participant that
    ``waits_for(role)`` says is coming."""
    seen, todo = {role}, [role]
    while todo:
        current = todo.pop()
        for planned in wiring.values():
            if not any(e.src.process == current for e in planned.edges):
                continue
            if planned.status is Status.PENDING and any(
                waits_for(p) for e in planned.edges for p in (e.src.process, e.tgt.process)
            ):
                return False
            for edge in planned.edges:
                if edge.tgt.process not in seen:
                    seen.add(edge.tgt.process)
                    todo.append(edge.tgt.process)
    return True
