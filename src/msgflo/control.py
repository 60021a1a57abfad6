"""The control channel: a coordinator asks one of our participants to subscribe an inport to a
source queue itself.

MQTT has no broker-side bindings.  The original forwarded every message of every edge through
the coordinator's process, so data stopped when the coordinator did.  Participants of ours
instead take a request on a topic of their own, ``msgflo/control/<participant id>``, and
subscribe their inport to the source topic directly (a shared subscription per role, so several
instances of a role still share the work).  Participants that do not answer — Node ones, foreign
devices — are detected by the missing reply and served by forwarding as before.

Request:  ``{"protocol": "msgflo", "command": "attach"|"detach",
"payload": {"port", "source", "requestId", "replyTo"}}``
Reply on ``replyTo``: ``{"protocol": "msgflo", "command": "attached"|"detached"|"error",
"payload": {"requestId", "error"?}}``
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from msgflo.transport import Client, Message, QueueKind, encode

log = logging.getLogger(__name__)

PREFIX = "msgflo/control"
PROTOCOL = "msgflo"
REPLY_TIMEOUT = 2.0
"""How long a coordinator waits for an answer before it forwards the edge itself."""


def control_topic(participant_id: str) -> str:
    return f"{PREFIX}/{participant_id}"


def share_group(inqueue: str) -> str:
    """Shared-subscription group of an inport: one per role's queue, and MQTT forbids ``/+#``."""
    return "".join("_" if c in "/+#" else c for c in inqueue)


AttachHandler = Callable[[str, str], Awaitable[None]]
"""``(port, source)`` → subscribe (or unsubscribe) the inport ``port`` to ``source``."""


class ControlServer:
    """The participant's side: one subscription, requests answered in order."""

    def __init__(
        self, client: Client, participant_id: str, attach: AttachHandler, detach: AttachHandler
    ) -> None:
        self.client = client
        self.topic = control_topic(participant_id)
        self._attach = attach
        self._detach = detach

    async def start(self) -> None:
        await self.client.subscribe_to_queue(self.topic, self._on_request)

    async def stop(self) -> None:
        await self.client.unsubscribe_from_queue(self.topic)

    async def _on_request(self, message: Message) -> None:
        await self.client.ack_message(message)
        request = message.data
        payload = request.get("payload") if isinstance(request, dict) else None
        if not isinstance(payload, dict) or request.get("protocol") != PROTOCOL:
            log.warning("ignoring a malformed control request on %s", self.topic)
            return
        reply_to, request_id = payload.get("replyTo"), payload.get("requestId")
        command, port, source = request.get("command"), payload.get("port"), payload.get("source")
        reply: dict[str, Any] = {"requestId": request_id}
        try:
            if not isinstance(port, str) or not isinstance(source, str):
                raise ValueError("port and source must be strings")
            if command == "attach":
                await self._attach(port, source)
                answer = "attached"
            elif command == "detach":
                await self._detach(port, source)
                answer = "detached"
            else:
                raise ValueError(f"unknown command {command!r}")
        except Exception as exc:
            answer, reply["error"] = "error", str(exc)
        if isinstance(reply_to, str):
            body = encode({"protocol": PROTOCOL, "command": answer, "payload": reply})
            await self.client.send_raw(QueueKind.OUT, reply_to, body)


class ControlClient:
    """The coordinator's side: ask a participant, and learn whether it did it."""

    def __init__(self, client: Client, timeout: float = REPLY_TIMEOUT) -> None:
        self.client = client
        self.timeout = timeout
        self.reply_to = f"{PREFIX}-reply/{uuid.uuid4().hex}"
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        self._started = False

    async def _start(self) -> None:
        if not self._started:
            self._started = True
            await self.client.subscribe_to_queue(self.reply_to, self._on_reply)

    async def _on_reply(self, message: Message) -> None:
        await self.client.ack_message(message)
        reply = message.data
        payload = reply.get("payload") if isinstance(reply, dict) else None
        if not isinstance(payload, dict):
            return
        waiter = self._waiting.get(str(payload.get("requestId")))
        if waiter is not None and not waiter.done():
            if reply.get("command") == "error":
                log.warning("control request failed: %s", payload.get("error"))
            waiter.set_result(reply.get("command") in ("attached", "detached"))

    async def ask(self, participant_id: str, command: str, port: str, source: str) -> bool:
        """``True`` when the participant confirmed; ``False`` when it refused or was silent."""
        await self._start()
        request_id = uuid.uuid4().hex
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        request = {
            "protocol": PROTOCOL,
            "command": command,
            "payload": {
                "port": port,
                "source": source,
                "requestId": request_id,
                "replyTo": self.reply_to,
            },
        }
        try:
            await self.client.send_raw(
                QueueKind.OUT, control_topic(participant_id), encode(request)
            )
            return await asyncio.wait_for(waiter, self.timeout)
        except TimeoutError:
            return False
        finally:
            self._waiting.pop(request_id, None)

    async def close(self) -> None:
        if self._started:
            with contextlib.suppress(Exception):
                await self.client.unsubscribe_from_queue(self.reply_to)
