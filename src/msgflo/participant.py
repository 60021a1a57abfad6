"""Participants: one role of a graph, living on a broker.

One class serves two styles, told apart by how ``process`` is written:

* the modern style: class attributes for the definition and ``async def process``; a message is
  acked when ``process`` returns and nacked when it raises;
* the msgflo-python 0.4 style: a definition dict handed to ``Participant.__init__`` and a plain
  ``def process(self, inport, msg)`` that calls ``self.send`` and ``self.ack``/``self.nack``
  itself.  Such code runs unchanged: ``process`` runs on one worker thread
  (:mod:`msgflo.legacy_worker`), in arrival order, so blocking calls in it never stall
  heartbeats or acks, and its queues keep that library's ``role/port`` names.

The definition a participant announces, with its defaults and queue names, is built by
:mod:`msgflo.definition`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from msgflo import deadletter
from msgflo.definition import DEFAULT_ICON, PortSpec, normalize_definition
from msgflo.failure import FailureHandling
from msgflo.legacy_worker import ACK, DONE, NACK, SEND, LegacyWorker, Op
from msgflo.observe.figures import ParticipantFigures, reporting_interval
from msgflo.observe.reporter import Reporter
from msgflo.presence import Presence
from msgflo.retry import Retries
from msgflo.schemas import Invalid, SchemaError
from msgflo.transport import Client, Message, QueueKind

log = logging.getLogger(__name__)


class Participant(FailureHandling):
    """Base class of every participant.  See the module docstring for the two styles."""

    component: ClassVar[str] = ""
    label: ClassVar[str] = ""
    icon: ClassVar[str] = DEFAULT_ICON
    inports: ClassVar[PortSpec | None] = None
    outports: ClassVar[PortSpec | None] = None
    validate_outgoing: bool = os.environ.get("MSGFLO_VALIDATE_OUTGOING", "") not in ("", "0")
    """Check what is sent against the outport's schema (``msgflo.testing`` turns it on);
    incoming messages are always checked where the inport has a schema."""

    def __init__(
        self,
        definition: Mapping[str, Any] | str | None = None,
        role: str | None = None,
    ) -> None:
        if isinstance(definition, str):
            definition, role = None, role or definition
        self.legacy = definition is not None
        self._raw_definition: Mapping[str, Any] = definition or {
            "component": self.component or type(self).__name__,
            # The class's own docstring only: inspect.getdoc would hand a class without one
            # the docstring of Participant itself.
            "label": self.label or inspect.cleandoc(type(self).__doc__ or "").split("\n")[0],
            "icon": self.icon,
            "inports": self.inports,
            "outports": self.outports,
        }
        self.role = role or ""
        self.definition: dict[str, Any] = self._define(self.role) if self.role else {}
        self.client: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._worker: LegacyWorker | None = None
        self._outqueues: dict[str, str] = {}
        self._sync_process = not inspect.iscoroutinefunction(type(self).process)
        self._handlers: dict[str, Callable[[Message], Awaitable[None]]] = {}
        self._presence = Presence(self.announce, self._inlet)
        self._settle_listeners: list[Callable[[Message, bool], None]] = []
        self._checks: dict[tuple[str, str], Callable[[Any], Invalid | None]] = {}
        self._retries = Retries(self.role, self.definition.get("inports", []))
        self._waiting: set[asyncio.Task[None]] = set()
        """Messages waiting in this process to be tried again (brokers without delays)."""
        self.figures: ParticipantFigures | None = None
        """Counters of this participant while it runs with figures on (:mod:`msgflo.observe`)."""
        self._reporter: Reporter | None = None

    # -- definition ------------------------------------------------------------------

    def set_role(self, role: str) -> None:
        self.role = role
        self.definition = self._define(role)
        self._retries = Retries(role, self.definition["inports"])

    def _define(self, role: str) -> dict[str, Any]:
        """The discovery payload; each inport of ours also names its dead-letter queue, the
        queue of the synthesized outport ``dead_<inport>`` (:mod:`msgflo.deadletter`)."""
        definition = normalize_definition(self._raw_definition, role, legacy=self.legacy)
        deadletter.mark(definition["inports"])
        return definition

    @property
    def id(self) -> str:
        return str(self.definition["id"])

    def inport(self, port: str) -> dict[str, Any]:
        return self._port("inports", port)

    def outport(self, port: str) -> dict[str, Any]:
        return self._port("outports", port)

    def _port(self, kind: str, port: str) -> dict[str, Any]:
        for candidate in self.definition[kind]:
            if candidate["id"] == port:
                return dict(candidate)
        known = ", ".join(p["id"] for p in self.definition[kind]) or "none"
        raise KeyError(f"{self.role}: no {kind[:-1]} {port!r} (has: {known})")

    # -- what users override ------------------------------------------------------------

    async def process(self, inport: str, msg: Message) -> Any:
        """Handle one message.  Override it, or write one ``async def process_<inport>(msg)``
        per inport; a plain ``def process`` selects the legacy style."""
        handler = getattr(self, f"process_{inport}", None)
        if handler is None:
            raise NotImplementedError(f"{type(self).__name__} handles no inport {inport!r}")
        return await handler(msg)

    # -- sending and settling --------------------------------------------------------------

    def send(self, outport: str, data: Any) -> Awaitable[None]:
        """Publish ``data`` on ``outport``: ``await`` it from async code; from the legacy worker
        thread it is queued to the event loop in order and returns at once."""
        if self._on_loop_thread():
            return self._send(outport, data)
        self._from_thread((SEND, outport, data))
        return DONE

    def ack(self, msg: Message) -> Awaitable[None]:
        if self._on_loop_thread():
            return self._settle(msg, ack=True)
        self._from_thread((ACK, msg, None))
        return DONE

    def nack(self, msg: Message, reason: str | Mapping[str, Any] | None = None) -> Awaitable[None]:
        """Fail ``msg``: it goes to the dead-letter port ``dead_<inport>`` with ``reason`` (a
        text, or fields of one's own) beside the role, inport and time."""
        why = deadletter.reason_for_nack(self.role, msg.port or "", reason)
        if self._on_loop_thread():
            return self._settle(msg, ack=False, reason=why)
        self._from_thread((NACK, msg, why))
        return DONE

    async def _send(self, outport: str, data: Any) -> None:
        queue = self._outqueues.get(outport)
        if queue is None:
            self.outport(outport)  # raises with the list of known ports
            raise KeyError(f"{self.role}: outport {outport!r} has no queue")
        assert self.client is not None
        if self.validate_outgoing and (check := self._checks.get(("outports", outport))):
            invalid = check(data)
            if invalid is not None:
                raise SchemaError(
                    f"{self.role}: data sent on {outport!r} does not match its schema: "
                    f"{invalid.error}"
                )
        await self.client.send_to(QueueKind.OUT, queue, data)
        if self.figures is not None:
            self.figures.outports[outport].count += 1

    def on_settled(self, listener: Callable[[Message, bool], None]) -> None:
        """Call ``listener(message, acked)`` whenever this participant acks or nacks a message:
        how tests see what a participant did with its input."""
        self._settle_listeners.append(listener)

    async def _settle(
        self, msg: Message, *, ack: bool, reason: Mapping[str, Any] | None = None
    ) -> None:
        if msg.settled:
            return
        for listener in self._settle_listeners:
            listener(msg, ack)
        if not ack and self.figures is not None:
            self.figures.nacks += 1
        if msg.token is None or self.client is None:
            msg.acked, msg.nacked = ack, not ack
            return
        if self._retries.tracked:
            self._retries.settled(id(msg))
        if ack:
            await self.client.ack_message(msg)
            return
        if reason is not None:
            reason = {**reason, "queue": msg.queue}  # where msgflo-replay sends it back
        await self.client.nack_message(msg, reason=reason)
        if reason is not None:
            await self._report_failure(reason)

    def _on_loop_thread(self) -> bool:
        return self._loop_thread is None or threading.get_ident() == self._loop_thread

    def _from_thread(self, op: Op) -> None:
        if self._worker is None:
            raise RuntimeError(
                f"{self.role}: send/ack from another thread needs a plain def process"
            )
        self._worker.hand_back(op)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, client: Client, *, announce: bool = True) -> None:
        """Declare ports, consume inports, announce (unless ``announce`` is false: the caller
        announces after printing its ready line), and keep announcing."""
        if not self.role:
            raise ValueError(f"{type(self).__name__}: no role given")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        await self._load_schemas()
        interval = reporting_interval()
        if interval is not None:
            self.figures = ParticipantFigures.of(self.definition)
        if self._sync_process:
            self._worker = LegacyWorker(self, self._loop)
        for port in self.definition["outports"]:
            await client.create_queue(
                QueueKind.OUT, port["queue"], persistent=port.get("persistent", True)
            )
            self._outqueues[port["id"]] = port["queue"]
        self.client = client  # only now: threads of legacy code take a set client as "running"
        for port in self.definition["inports"]:
            await client.create_queue(
                QueueKind.IN, port["queue"], persistent=port.get("persistent", True)
            )
            handler = self._make_handler(port["id"])
            self._handlers[port["id"]] = handler
            await client.subscribe_to_queue(port["queue"], handler)
        await self._presence.open(client, self.id, self.role)
        client.on_reconnect(self.announce)
        if announce:
            await self.announce()
        await self._presence.keep_announcing()
        if self.figures is not None and interval is not None:
            self._reporter = Reporter(client, self.definition, self.figures, interval)
            self._reporter.start()

    def _inlet(self, port: str) -> tuple[str, Callable[[Message], Awaitable[None]]]:
        """Where an inport's input comes from and who handles it (:class:`Presence` attaches
        sources a coordinator hands over to the same handler)."""
        return self.inport(port)["queue"], self._handlers[port]

    async def announce(self) -> None:
        """Send our discovery message, from start until stop; on MQTT a ``hello`` first
        (:meth:`Presence.hello`)."""
        if self.client is not None:
            await self._presence.hello()
            await self.client.register_participant(self.definition)

    async def deliver(self, inport: str, data: Any) -> None:
        """Hand ``data`` to ``process`` as if it came on ``inport`` (command-line IIPs)."""
        queue = self.inport(inport)["queue"]
        await self._handlers[inport](Message.from_data(queue, data, port=inport))

    async def stop(self) -> None:
        """Stop consuming, finish what was taken, then go quiet; the client stays connected."""
        client = self.client
        if client is not None:
            for port in self.definition["inports"]:
                await client.unsubscribe_from_queue(port["queue"])
            await self._presence.leave(client)
        for waiting in list(self._waiting):  # unsettled: the broker hands them out again
            waiting.cancel()
        if self._worker is not None:
            await self._worker.stop()  # its thread may still send: keep it reachable until then
            self._worker = None
        self._retries.close()
        if self._reporter is not None:
            await self._reporter.stop()
            self._reporter = None
        await self._presence.stop_heartbeat()
        if client is not None:
            await client.flush()
        self.client = None

    # -- message handling ---------------------------------------------------------------------

    def _make_handler(self, port: str) -> Callable[[Message], Awaitable[None]]:
        """Messages taken from another topic for this port (:meth:`_attach`) count as this
        port's: their dead letters go to ``dead-<inqueue>`` like the others'."""
        inqueue = self.inport(port)["queue"]
        check = self._checks.get(("inports", port))
        counted = self.figures.inports[port] if self.figures is not None else None
        if self._sync_process:
            worker = self._worker
            assert worker is not None

            def legacy(msg: Message) -> Awaitable[None]:
                msg.port, msg.queue = port, inqueue
                if counted is not None:
                    counted.count += 1
                if check is not None and (invalid := check(msg.data)) is not None:
                    return self._invalid(port, msg, invalid)
                if msg.redelivered and self._poisoned(port, msg):
                    return self._settle(msg, ack=False, reason=self._poison_reason(port, msg))
                return worker.submit(port, msg)

            return legacy

        timing = self.figures.processing if self.figures is not None else None
        clock = time.perf_counter

        async def modern(msg: Message) -> None:
            msg.port, msg.queue = port, inqueue
            if counted is not None:
                counted.count += 1
            if check is not None and (invalid := check(msg.data)) is not None:
                await self._invalid(port, msg, invalid)
                return
            if msg.redelivered and self._poisoned(port, msg):
                await self._settle(msg, ack=False, reason=self._poison_reason(port, msg))
                return
            started = clock() if timing is not None else 0.0
            try:
                await self.process(port, msg)
            except Exception as exc:
                await self._failed(port, msg, exc)
            else:
                await self._settle(msg, ack=True)
            if timing is not None:
                timing.observe(clock() - started)

        return modern


def component(
    *,
    name: str | None = None,
    label: str = "",
    icon: str = DEFAULT_ICON,
    inports: PortSpec | None = None,
    outports: PortSpec | None = None,
) -> Callable[[Callable[..., Any]], type[Participant]]:
    """Make a participant class from a function of the data.

    The function gets the payload (or ``port, payload`` when it takes two arguments) and returns
    a mapping of outport to value, or ``None`` to send nothing.  It may be ``async``.
    """

    def wrap(func: Callable[..., Any]) -> type[Participant]:
        takes_port = len(inspect.signature(func).parameters) >= 2
        is_async = inspect.iscoroutinefunction(func)

        async def process(self: Participant, port: str, msg: Message) -> None:
            result = func(port, msg.data) if takes_port else func(msg.data)
            if is_async:
                result = await result
            if result is None:
                return
            if not isinstance(result, Mapping):
                raise TypeError(
                    f"{func.__name__} must return a mapping of outport to value, "
                    f"not {type(result).__name__}"
                )
            for outport, value in result.items():
                await self.send(outport, value)

        attrs = {
            "component": name or func.__name__,
            "label": label or (inspect.getdoc(func) or "").split("\n")[0],
            "icon": icon,
            "inports": inports,
            "outports": outports,
            "process": process,
            "__doc__": func.__doc__,
            "__module__": func.__module__,
        }
        return type(func.__name__, (Participant,), attrs)

    return wrap
