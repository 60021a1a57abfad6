"""How a planned binding reaches the network: on the broker, or, where the transport allows it
(MQTT), by asking the consuming participants to take the source themselves over the control
channel (:mod:`msgflo.control`), so that data does not pass through the coordinator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from msgflo.control import ControlClient
from msgflo.coordinator.events import Event, EventKind, Events
from msgflo.coordinator.registry import Instance, Registry
from msgflo.transport import Binding, BindingType, Broker, TransportError
from msgflo.wiring import Planned, Status, bind, describe_route, unbind


class Binder:
    """Makes and undoes bindings; remembers which edges their consumers took themselves."""

    def __init__(
        self,
        broker: Broker,
        registry: Registry,
        events: Events,
        *,
        static: bool,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.broker = broker
        self.registry = registry
        self.events = events
        self.static = static
        self._spawn = spawn
        self.control = ControlClient(broker)
        self.attached: dict[Binding, set[str]] = {}
        """Edges whose consumers subscribe to the source themselves, by instance id."""
        self.can_answer: set[str] = set()
        """Instances that said ``hello`` (ours): only they are asked, so the silence of Node
        and foreign participants is never waited out; one that fails to answer is dropped."""

    async def bind(self, binding: Binding) -> None:
        """Ask our participants to consume the source themselves where the transport allows
        it (MQTT); otherwise bind on the broker."""
        if self._may_attach(binding):
            targets = self.registry.consumers_of(binding.tgt)
            if targets and await self._attach_all(binding, targets):
                self.attached[binding] = {instance_id for instance_id, _ in targets}
                return
        await bind(self.broker, binding, declare=self.static)

    async def unbind(self, binding: Binding, in_graph: Callable[[str], bool]) -> None:
        """``in_graph(role)`` tells whether a consumer's node is still in the graph."""
        attached = self.attached.pop(binding, None)
        if attached is None:
            await unbind(self.broker, binding)
            return
        live = [(i, p) for i, p in self.registry.consumers_of(binding.tgt) if i in attached]
        staying = [t for t in live if in_graph(self.registry.instances[t[0]].role)]
        leaving = [t for t in live if t not in staying]
        if leaving:
            # Their node left the graph (and is being stopped if we started it): they may never
            # answer, and nothing waits for them while the graph changes.
            self._spawn(self._detach_quietly(binding, leaving))
        await self._ask_all("detach", binding, staying)

    def announce_soon(self) -> None:
        """:meth:`announce` in the background: the record is for other processes to read, and
        waiting for the broker to confirm it must not hold up wiring or the data behind it."""
        self._spawn(self.announce())

    async def announce(self) -> None:
        """Publish every binding this binder realises, forwarded or taken by the consumers,
        where the broker cannot list them itself (MQTT), so that other coordinators and
        ``msgflo-setup --check`` see bindings they did not make."""
        made = dict.fromkeys(await self.broker.list_bindings()) | dict.fromkeys(self.attached)
        try:
            await self.broker.announce_bindings(list(made))
        except TransportError as exc:
            self.events.warn_once(f"announce {exc}", f"binding record not published: {exc}")

    async def _detach_quietly(self, binding: Binding, targets: Sequence[tuple[str, str]]) -> None:
        await self._ask_all("detach", binding, targets)

    def _may_attach(self, binding: Binding) -> bool:
        return (
            self.broker.supports_attach
            and not self.static
            and binding.type is BindingType.PUBSUB
            and bool(binding.src)
        )

    async def _ask_all(
        self, command: str, binding: Binding, targets: Sequence[tuple[str, str]]
    ) -> list[bool]:
        asks = [self.control.ask(i, command, port, binding.src) for i, port in targets]
        answers = list(await asyncio.gather(*asks))
        for (instance_id, _), answered in zip(targets, answers, strict=True):
            if not answered:
                self.can_answer.discard(instance_id)
        return answers

    async def _attach_all(self, binding: Binding, targets: Sequence[tuple[str, str]]) -> bool:
        if any(instance_id not in self.can_answer for instance_id, _ in targets):
            return False
        answers = await self._ask_all("attach", binding, targets)
        if all(answers):
            return True
        done = [target for target, answered in zip(targets, answers, strict=True) if answered]
        await self._ask_all("detach", binding, done)
        return False

    async def attach_new_instance(self, instance: Instance) -> None:
        """A new instance of a role whose input is attached must attach too, or the edge goes
        back to forwarding for every instance (mixing both would deliver twice)."""
        queues = {p.get("queue") for p in instance.definition.get("inports", [])}
        for binding, attached in list(self.attached.items()):
            if binding.tgt not in queues:
                continue
            targets = [
                (i, p) for i, p in self.registry.consumers_of(binding.tgt) if i == instance.id
            ]
            if await self._attach_all(binding, targets):
                attached.add(instance.id)
                how = f"{instance.id} takes {binding.src} itself"
            else:
                del self.attached[binding]
                others = [
                    (i, p) for i, p in self.registry.consumers_of(binding.tgt) if i in attached
                ]
                await self._ask_all("detach", binding, others)
                await bind(self.broker, binding)
                how = f"{instance.id} cannot be asked; forwarding {binding.src} -> {binding.tgt}"
            self.events.emit(Event(EventKind.WIRED, instance.role, how, {"id": instance.id}))


class Applied:
    """The plan as applied: what each unit of wiring is now, and who waits for it to settle."""

    def __init__(self, binder: Binder, events: Events) -> None:
        self.binder = binder
        self.events = events
        self.wiring: dict[str, Planned] = {}
        self._changed = asyncio.Condition()

    async def apply(self, planned: Sequence[Planned], in_graph: Callable[[str], bool]) -> None:
        """Undo what the new plan drops or changes, then make what it adds; the bindings of
        each step are made concurrently (one round trip for a whole graph, not one per edge)."""
        fresh = {p.key: p for p in planned}
        dropped = [
            (key, bound.binding)
            for key, bound in self.wiring.items()
            if bound.binding is not None
            and (fresh.get(key) is None or fresh[key].binding != bound.binding)
        ]
        await asyncio.gather(*(self._unbind(binding, in_graph) for _, binding in dropped))
        for key, _ in dropped:
            if key not in fresh:
                self.events.emit(
                    Event(EventKind.UNWIRED, message=f"unwired {key}", data={"key": key})
                )
        added = [
            wanted
            for key, wanted in fresh.items()
            if wanted.binding is not None
            and (key not in self.wiring or self.wiring[key].binding != wanted.binding)
        ]
        for made in await asyncio.gather(*(self._bind(wanted) for wanted in added)):
            fresh[made.key] = made
        for key, current in fresh.items():
            old = self.wiring.get(key)
            if old is None or (old.status, old.binding) != (current.status, current.binding):
                self._report(key, current)
        self.wiring = fresh
        if dropped or added:
            self.binder.announce_soon()

    async def _unbind(self, binding: Binding, in_graph: Callable[[str], bool]) -> None:
        with contextlib.suppress(TransportError):
            await self.binder.unbind(binding, in_graph)

    async def _bind(self, wanted: Planned) -> Planned:
        assert wanted.binding is not None
        try:
            await self.binder.bind(wanted.binding)
        except TransportError as exc:
            return Planned(wanted.key, wanted.edges, Status.ERROR, None, f"{wanted.key}: {exc}")
        return wanted

    def _report(self, key: str, current: Planned) -> None:
        if current.status in (Status.BOUND, Status.CONNECTED):
            binding = current.binding
            how = current.detail or (
                describe_route(binding, binding in self.binder.attached) if binding else ""
            )
            self.events.emit(
                Event(EventKind.WIRED, message=f"wired {key}: {how}", data={"key": key})
            )
        elif current.status is Status.ERROR:
            self.events.warn_once(f"wiring {current.detail}", current.detail, EventKind.ERROR)

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def settled(self, timeout: float) -> bool:
        def done() -> bool:
            return all(p.status is not Status.PENDING for p in self.wiring.values())

        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(done)

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            return False
        return True
