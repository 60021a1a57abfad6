"""The control channel: a coordinator asks one of our participants to subscribe an inport to a
source queue itself.

MQTT has no broker-side bindings.  The original forwarded every message of every edge through
the coordinator's process, so data stopped when the coordinator did.  Participants of ours
instead take a request on a topic of their own, ``msgflo/control/<participant id>``, and
subscribe their inport to the source topic directly (a shared subscription per role, so several
instances of a role still share the work).  Participants that cannot answer (Node ones, foreign
devices) are served by forwarding as before.

Request:  ``{"protocol": "msgflo", "command": "attach"|"detach",
"payload": {"port", "source", "requestId", "replyTo"}}``
Reply on ``replyTo``: ``{"protocol": "msgflo", "command": "attached"|"detached"|"error",
"payload": {"requestId", "error"?}}``

Only participants that said ``hello`` are asked: before each announcement our participants
publish ``{"protocol": "msgflo", "command": "hello", "payload": {"id"}}`` on
``msgflo/control-hello``, so a coordinator never waits out the silence of a participant that
cannot answer (Node participants, foreign ones announced by ``msgflo-register``).

The same module carries the *discovery request*: a coordinator that starts (or is asked by an
FBP client) publishes ``{"protocol": "msgflo", "command": "discover", "payload": {"jitter"}}``
on the broadcast channel ``msgflo/discover`` (an MQTT topic; on AMQP and memory a durable fanout
exchange to which each listener binds a private auto-deleted queue).  Our participants and
``msgflo-register`` answer with their discovery message on ``fbp`` after a random delay of up to
``jitter`` seconds.  Nothing of the original listens there, so Node peers keep their heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from msgflo.transport import Client, Message, QueueKind, TransportError, encode

log = logging.getLogger(__name__)

PREFIX = "msgflo/control"
PROTOCOL = "msgflo"
REPLY_TIMEOUT = 2.0
"""How long a coordinator waits for an answer before it forwards the edge itself."""


HELLO_CHANNEL = f"{PREFIX}-hello"
DISCOVER_CHANNEL = "msgflo/discover"
DEFAULT_JITTER = 0.5
"""Seconds over which answers to a discovery request are spread (1,000 answers: ~2,000/s)."""
MAX_JITTER = 10.0


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
        self.participant_id = participant_id
        self.topic = control_topic(participant_id)
        self._attach = attach
        self._detach = detach

    async def start(self) -> None:
        await self.client.subscribe_to_queue(self.topic, self._on_request)

    async def hello(self) -> None:
        """Tell coordinators that this participant answers control requests."""
        body = {"protocol": PROTOCOL, "command": "hello", "payload": {"id": self.participant_id}}
        await self.client.send_raw(QueueKind.OUT, HELLO_CHANNEL, encode(body))

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


def hello_sender(data: Any) -> str | None:
    """The participant id of a ``hello``, or ``None`` for anything else."""
    if (
        isinstance(data, dict)
        and data.get("protocol") == PROTOCOL
        and data.get("command") == "hello"
    ):
        payload = data.get("payload")
        if isinstance(payload, dict) and isinstance(payload.get("id"), str):
            return str(payload["id"])
    return None


def discovery_request(jitter: float = DEFAULT_JITTER) -> bytes:
    return encode({"protocol": PROTOCOL, "command": "discover", "payload": {"jitter": jitter}})


Announce = Callable[[], Awaitable[None]]


class DiscoveryResponder:
    """Answers discovery requests for every participant on one client (several participants
    may share a connection: one subscription serves them all).  Each answers after its own
    random delay; a request that comes while its answer is due adds nothing."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._announcers: list[Announce] = []
        self._due: dict[Announce, asyncio.Task[None]] = {}
        self._listening = False

    @classmethod
    def of(cls, client: Client) -> DiscoveryResponder:
        responder = _responders.get(client)
        if responder is None:
            responder = _responders[client] = cls(client)
        return responder

    async def add(self, announce: Announce) -> None:
        """Answer requests with ``announce``; listens where the transport can, elsewhere the
        heartbeat alone announces."""
        self._announcers.append(announce)
        if self._listening:
            return
        try:
            await self.client.subscribe_broadcast(DISCOVER_CHANNEL, self._on_request)
        except TransportError as exc:
            log.debug("not listening for discovery requests: %s", exc)
            return
        self._listening = True

    async def remove(self, announce: Announce) -> None:
        with contextlib.suppress(ValueError):
            self._announcers.remove(announce)
        due = self._due.pop(announce, None)
        if due is not None:
            due.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await due
        if self._listening and not self._announcers:
            self._listening = False
            await self.client.unsubscribe_broadcast(DISCOVER_CHANNEL)

    async def _on_request(self, message: Message) -> None:
        request = message.data
        if not isinstance(request, dict) or request.get("command") != "discover":
            return
        payload = request.get("payload")
        jitter = payload.get("jitter") if isinstance(payload, dict) else None
        if not isinstance(jitter, int | float) or isinstance(jitter, bool):
            jitter = DEFAULT_JITTER
        spread = min(max(float(jitter), 0.0), MAX_JITTER)
        loop = asyncio.get_running_loop()
        for announce in list(self._announcers):
            due = self._due.get(announce)
            if due is None or due.done():
                delay = random.uniform(0, spread)
                self._due[announce] = loop.create_task(self._answer(announce, delay))

    async def _answer(self, announce: Announce, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await announce()
        except Exception as exc:  # the heartbeat announces again; a request must never end us
            log.warning("could not answer a discovery request: %s", exc)


_responders: weakref.WeakKeyDictionary[Client, DiscoveryResponder] = weakref.WeakKeyDictionary()
