"""Failures our participants report (:data:`msgflo.deadletter.FAILURES_CHANNEL`) become
coordinator errors of their role, which the FBP runtime sends as ``network:processerror``.

Node participants report nothing: their failures show only as dead letters."""

from __future__ import annotations

from collections.abc import Mapping

from msgflo.coordinator.events import Event, EventKind, Events
from msgflo.deadletter import FAILURES_CHANNEL, describe_failure
from msgflo.transport import Broker, Message, TransportError


class Failures:
    def __init__(self, broker: Broker, events: Events) -> None:
        self.broker = broker
        self.events = events

    async def start(self) -> None:
        try:
            await self.broker.subscribe_broadcast(FAILURES_CHANNEL, self._on_failure)
        except TransportError as exc:
            self.events.warn_once(
                "failures channel", f"failures of participants are not reported: {exc}"
            )

    async def _on_failure(self, message: Message) -> None:
        data = message.data
        payload = data.get("payload") if isinstance(data, Mapping) else None
        if not isinstance(payload, Mapping) or data.get("command") != "failed":
            return
        role, reason = payload.get("role"), payload.get("reason")
        if not isinstance(role, str) or not isinstance(reason, Mapping):
            return
        self.events.emit(
            Event(
                EventKind.ERROR,
                role,
                describe_failure(role, reason),
                {"id": str(payload.get("id", "")), "reason": dict(reason)},
            )
        )
