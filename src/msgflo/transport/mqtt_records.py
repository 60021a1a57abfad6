"""Binding records: how other processes see the bindings an MQTT binder forwards.

Bindings live in the binder's process only, as in the original.  So that ``msgflo`` tools in
other processes can list them, each binder keeps a retained record of its bindings at
``msgflo/bindings/<its client id>``: cleared when it disconnects and, by its connection's last
will, when it dies without a word.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

import aiomqtt
import orjson

from msgflo.transport.base import Binding, BindingType, TransportError, encode
from msgflo.transport.mqtt_link import Link
from msgflo.transport.mqtt_outbox import FLUSH_POLL
from msgflo.transport.reconnect import cause

log = logging.getLogger("msgflo.transport.mqtt")
"""One logger for the whole transport, whichever of its modules speaks."""

BINDINGS_TOPIC = "msgflo/bindings"
"""Each binder's retained record of its bindings is ``msgflo/bindings/<its client id>``."""


class BindingRecord:
    """One binder's record.  Its :attr:`will` goes into every session the binder opens."""

    def __init__(self, client_id: str, timeout: float) -> None:
        self._client_id = client_id
        self._topic = f"{BINDINGS_TOPIC}/{client_id}"
        self._timeout = min(timeout, 5.0)
        self._body = b""
        self.will = aiomqtt.Will(self._topic, b"", qos=1, retain=True)

    async def announce(self, bindings: Sequence[Binding], link: Link | None) -> None:
        """Publish the record of ``bindings`` on ``link``, unless the broker has it already."""
        body = (
            encode({"binder": self._client_id, "bindings": [b.to_json() for b in bindings]})
            if bindings
            else b""
        )
        if body != self._body:
            self._body = body
            await self._keep(link)

    async def restore(self, link: Link) -> None:
        """Publish the record again on a new connection: the broker sent the will (an empty
        record) when the last one dropped."""
        if self._body:
            await self._keep(link)

    async def withdraw(self, link: Link | None) -> None:
        """Clear the record (the binder is leaving)."""
        if self._body:
            self._body = b""
            await self._keep(link)

    async def _keep(self, link: Link | None) -> None:
        """Publish the record and wait (bounded) until the broker has it."""
        sent = link.publish(self._topic, self._body, 1, retain=True) if link else None
        if sent is None:
            return  # published again by restore()
        for _ in range(int(self._timeout / FLUSH_POLL)):
            if sent.done():
                return
            await asyncio.sleep(FLUSH_POLL)
        log.info("binding record on %r not confirmed in time", self._topic)


async def read_bindings(session: aiomqtt.Client, timeout: float, where: str) -> list[Binding]:
    """Every binder's record, read on ``session`` (unopened, short-lived)."""
    found: dict[Binding, None] = {}
    for topic, body in (await _read_records(session, timeout, where)).items():
        try:
            raw = orjson.loads(body)
            found.update(dict.fromkeys(_binding(entry) for entry in raw["bindings"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise TransportError(f"binding record {topic!r} is not valid: {exc}") from None
    return list(found)


async def _read_records(session: aiomqtt.Client, timeout: float, where: str) -> dict[str, bytes]:
    """Retained records come right after the subscription; a marker published after a
    second subscription arrives once they all have."""
    marker = f"msgflo-probe/{uuid.uuid4().hex}"
    records: dict[str, bytes] = {}
    try:
        async with asyncio.timeout(timeout), session:
            await session.subscribe(f"{BINDINGS_TOPIC}/+", qos=1)
            await session.subscribe(marker, qos=1)
            await session.publish(marker, b"", qos=1)
            async for message in session.messages:
                topic = message.topic.value
                if topic == marker:
                    break
                if isinstance(message.payload, bytes) and message.payload:
                    records[topic] = message.payload
                else:
                    records.pop(topic, None)
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        raise TransportError(f"{where}: cannot read the binding records: {cause(exc)}") from None
    return records


def _binding(entry: dict[str, str]) -> Binding:
    deadletter = entry.get("deadletter")
    return Binding(
        src=str(entry.get("src", "")),
        tgt=str(entry["tgt"]),
        type=BindingType(entry.get("type", "pubsub")),
        deadletter=str(deadletter) if deadletter else None,
    )
