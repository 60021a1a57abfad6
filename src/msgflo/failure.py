"""What a participant does with a message it cannot process: schema checks, retries, poison
messages, dead-lettering with a reason, and the failure report for coordinators.

A mixin of :class:`msgflo.participant.Participant`, kept apart so that the participant's own
module stays about ports, sending and the lifecycle; see docs/deadletters.md for the behaviour.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from msgflo import deadletter
from msgflo.observe.figures import ParticipantFigures
from msgflo.retry import Retries
from msgflo.schemas import Invalid, load_port_schema
from msgflo.transport import Client, Message, QueueKind

log = logging.getLogger("msgflo.participant")


class FailureHandling:
    """The participant's attributes this relies on are declared here for type checking."""

    role: str
    client: Client | None
    definition: dict[str, Any]
    figures: ParticipantFigures | None
    _handlers: dict[str, Callable[[Message], Awaitable[None]]]
    _outqueues: dict[str, str]
    _checks: dict[tuple[str, str], Callable[[Any], Invalid | None]]
    _retries: Retries
    _waiting: set[asyncio.Task[None]]
    _send: Callable[[str, Any], Awaitable[None]]
    _settle: Callable[..., Awaitable[None]]

    async def _report_failure(self, reason: Mapping[str, Any]) -> None:
        """Tell coordinators (and FBP clients) that a message failed; a report that cannot be
        sent costs nothing but itself."""
        assert self.client is not None
        report = deadletter.failure_report(str(self.definition["id"]), self.role, reason)
        try:
            await self.client.send_raw(QueueKind.OUT, deadletter.FAILURES_CHANNEL, report)
        except Exception as exc:
            log.warning("%s: failure report not sent: %s", self.role, exc)

    async def _load_schemas(self) -> None:
        """Compile every port's schema before anything is consumed; a schema that cannot be
        read or compiled ends the start (:class:`SchemaError`, one line naming the port)."""
        for kind in ("inports", "outports"):
            for port in self.definition[kind]:
                if port.get("schema") is None or (kind, port["id"]) in self._checks:
                    continue
                loaded = await load_port_schema(self.role, kind[:-1], port["id"], port["schema"])
                port["schema"] = loaded.announced
                self._checks[(kind, port["id"])] = loaded.check

    async def _invalid(self, port: str, msg: Message, invalid: Invalid) -> None:
        """Data that does not match the inport's schema never reaches ``process``."""
        log.error("%s: %r input does not match its schema: %s", self.role, port, invalid.error)
        reason = deadletter.reason_for_nack(
            self.role, port, {"reason": "schema", "error": invalid.error, "path": invalid.path}
        )
        await self._settle(msg, ack=False, reason=reason)

    def _poisoned(self, port: str, msg: Message) -> bool:
        count = self._retries.poisoned(port, msg.queue, msg.body, id(msg))
        if count is None:
            return False
        msg.attempt = count
        log.error(
            "%s: %r message delivered %d times: dead-lettered unprocessed", self.role, port, count
        )
        return True

    def _poison_reason(self, port: str, msg: Message) -> dict[str, Any]:
        return deadletter.reason_for_nack(
            self.role,
            port,
            {
                "reason": "poison",
                "error": f"delivered {msg.attempt} times without being settled",
                "attempt": msg.attempt,
            },
        )

    async def _retry(self, port: str, msg: Message, exc: Exception) -> bool:
        """Try ``msg`` again later if the inport's policy allows; ``True`` when it will be."""
        policy = self._retries.policy(port)
        if msg.attempt >= policy.attempts or self.client is None or msg.token is None:
            return False
        delay = policy.delay(msg.attempt)
        log.warning(
            "%s: process(%r) failed (try %d of %d): %s: %s; again in %g s",
            self.role,
            port,
            msg.attempt,
            policy.attempts,
            type(exc).__name__,
            exc,
            delay,
        )
        if await self.client.retry_later(msg, delay, msg.attempt + 1):
            return True
        msg.attempt += 1
        waiting = asyncio.get_running_loop().create_task(self._again(port, msg, delay))
        self._waiting.add(waiting)
        waiting.add_done_callback(self._waiting.discard)
        return True

    async def _again(self, port: str, msg: Message, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._handlers[port](msg)

    async def _failed(self, port: str, msg: Message, exc: Exception) -> None:
        """A failing ``process`` costs one message, never the participant."""
        if self.figures is not None:
            self.figures.errors += 1  # every failed try; a dead letter also counts as a nack
        if await self._retry(port, msg, exc):
            return
        log.error("%s: process(%r) failed: %s: %s", self.role, port, type(exc).__name__, exc)
        if "error" in self._outqueues:
            report = {
                "error": str(exc),
                "type": type(exc).__name__,
                "inport": port,
                "data": msg.data,
            }
            try:
                await self._send("error", report)
            except Exception as send_exc:
                log.error("%s: could not send the error: %s", self.role, send_exc)
        reason = deadletter.reason_for_exception(self.role, port, exc)
        reason["attempt"] = msg.attempt
        await self._settle(msg, ack=False, reason=reason)
