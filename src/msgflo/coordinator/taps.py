"""Observing data: taps on outports (what FBP clients see of exported outports) and watched
edges (``network:data``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from msgflo.coordinator.events import CoordinatorError, Event, EventKind, Events
from msgflo.coordinator.registry import Registry
from msgflo.transport import Binding, Broker, TransportError
from msgflo.transport.base import DataHandler
from msgflo.wiring import Direction, Endpoint, Link, Planned, Status, WiringError, find_queue

log = logging.getLogger(__name__)

TapHandler = Callable[[Endpoint, Any], Awaitable[None]]


class Observers:
    """Taps and watched edges of one coordinator; the caller holds the coordinator's lock."""

    def __init__(self, broker: Broker, registry: Registry, events: Events) -> None:
        self.broker = broker
        self.registry = registry
        self.events = events
        self._taps: dict[Endpoint, list[TapHandler]] = {}
        self._tapped: dict[Endpoint, tuple[Binding, DataHandler]] = {}
        self._watched: dict[Link, tuple[Binding, DataHandler]] = {}

    def add_tap(self, ref: Endpoint, handler: TapHandler) -> None:
        self._taps.setdefault(ref, []).append(handler)

    def remove_tap(self, ref: Endpoint, handler: TapHandler) -> None:
        handlers = self._taps.get(ref, [])
        if handler in handlers:
            handlers.remove(handler)
        if not handlers:
            self._taps.pop(ref, None)

    async def apply_taps(self) -> None:
        """Subscribe what is tapped and known, follow a participant that changed its queue."""
        definitions = self.registry.definitions()

        def queue_of(ref: Endpoint) -> str | None:
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

            async def observer(_binding: Binding, data: Any, ref: Endpoint = ref) -> None:
                for handler in list(self._taps.get(ref, [])):
                    try:
                        await handler(ref, data)
                    except Exception:
                        log.exception("tap on %s failed", ref)

            try:
                await self.broker.subscribe_data(binding, observer)
            except TransportError as exc:
                self.events.warn_once(
                    f"tap {ref} {exc}", f"cannot observe {ref}: {exc}", EventKind.ERROR
                )
                continue
            self._tapped[ref] = (binding, observer)

    async def watch(self, edge: Link, planned: Planned) -> None:
        if edge in self._watched:
            return
        queue = self._edge_source(edge, planned)
        binding = Binding(src=queue, tgt=planned.binding.tgt if planned.binding else queue)

        async def report(_binding: Binding, data: Any) -> None:
            self.events.emit(
                Event(
                    EventKind.DATA,
                    edge.src.process,
                    f"{edge}: {str(data)[:80]}",
                    {"edge": edge, "data": data},
                )
            )

        await self.broker.subscribe_data(binding, report)
        self._watched[edge] = (binding, report)

    def _edge_source(self, edge: Link, planned: Planned) -> str:
        if planned.status not in (Status.BOUND, Status.CONNECTED):
            raise CoordinatorError(f"edge {edge} is not wired yet ({planned.detail})")
        definition = self.registry.definitions().get(edge.src.process)
        if definition is None:
            raise CoordinatorError(f"edge {edge}: {edge.src.process} not discovered")
        return find_queue(definition, Direction.OUT, edge.src.port)

    async def unwatch(self, edge: Link) -> None:
        watched = self._watched.pop(edge, None)
        if watched is not None:
            await self.broker.unsubscribe_data(*watched)
