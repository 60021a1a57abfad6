"""Queue-driven scaling of the roles a coordinator runs (``msgflo --autoscale FILE``).

guv's model (:mod:`msgflo.deploy.autoscale`) applied to local processes: every
``pollinterval`` seconds each scaled role's inqueue is counted on the broker, the scaler
decides, and the supervisor starts or stops copies of the role's command.  The copies consume
the same inqueue, so the broker shares the work between them.  The scaler counts slots, not
live processes (see :class:`~msgflo.coordinator.supervisor.Instances`), so a copy that keeps
crashing is restarted by its own policy and never makes the count swing.

A broker that cannot count a queue (MQTT, NATS) leaves each role at the count it started with,
with one warning: scaling blind would either starve the queue or flood the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence

from msgflo.coordinator.events import Event, EventKind, Events
from msgflo.coordinator.supervisor import Supervisor
from msgflo.deploy.autoscale import Decision, RoleScaling, Scaler
from msgflo.transport import Client

log = logging.getLogger(__name__)


def starting_instances(scalings: Sequence[RoleScaling]) -> dict[str, int]:
    """Copies to start each scaled role with: its ``min``, but at least one, so that the role
    announces itself and gets wired (its queue then fills while none runs)."""
    return {scaling.worker: max(scaling.minimum, 1) for scaling in scalings}


class Autoscaler:
    def __init__(
        self,
        broker: Client,
        supervisor: Supervisor,
        events: Events,
        scalings: Sequence[RoleScaling],
    ) -> None:
        self.broker = broker
        self.supervisor = supervisor
        self.events = events
        self.scalers = {scaling.name: Scaler(scaling) for scaling in scalings}
        self.decisions: dict[str, Decision] = {}
        """The latest decision per entry, for listeners that show the scaler's state."""
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._follow(scaler), name=f"autoscale {name}")
            for name, scaler in self.scalers.items()
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _follow(self, scaler: Scaler) -> None:
        while True:
            if not await self.poll(scaler):
                return
            await asyncio.sleep(scaler.scaling.pollinterval)

    async def poll(self, scaler: Scaler) -> bool:
        """One step for one entry; ``False`` when this broker can never tell its queue depth."""
        scaling = scaler.scaling
        role, queue = scaling.worker, scaling.queue or ""
        if not self.broker.counts_queues:
            count = self.supervisor.count(role)
            self.events.warn_once(
                f"autoscale depth {scaling.name}",
                f"{scaling.name}: {self.broker.address.redacted()} cannot count the messages "
                f"queued for {queue}; {role} keeps {count} instance(s), no autoscaling",
            )
            return False
        depth = await self.broker.queue_depth(queue)
        if depth is None:
            self.events.warn_once(
                f"autoscale depth {scaling.name}",
                f"{scaling.name}: cannot count {queue} now (not declared yet, or the broker is "
                "away); autoscaling waits",
            )
            return True
        queued = depth.messages
        current = self.supervisor.count(role)
        if current is None:
            return True  # not running (removed from the graph, or still without a command)
        decision = scaler.step(queued, current, consumers=depth.consumers)
        if decision.next is not None:
            self.supervisor.scale(role, decision.next)
        previous = self.decisions.get(scaling.name)
        self.decisions[scaling.name] = decision
        log.debug("%s", decision)
        if previous is None or decision.news_after(previous):
            self._emit(decision)
        return True

    def _emit(self, decision: Decision) -> None:
        data: Mapping[str, object] = {
            "queued": decision.queued,
            "workers": decision.current,
            "estimate": decision.estimate,
            "history_max": decision.history_max,
            "waited": decision.waited,
            "boot": decision.boot,
            "next": decision.next,
        }
        self.events.emit(Event(EventKind.AUTOSCALE, decision.role, str(decision), data))
