"""Turn one text frame into a handler call, or into an error reply naming the problem.

Whatever arrives (not JSON, no protocol, an unknown command, a payload of the wrong shape, a
request the client may not make), the client gets ``<protocol>:error`` and the runtime, the
coordinator and the network go on. Each request runs to its end even if its client leaves
meanwhile, so nothing is left half done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any

import orjson

from msgflo.coordinator import CoordinatorError
from msgflo.graph import GraphError
from msgflo.library import LibraryError
from msgflo.runtime.access import may_send
from msgflo.runtime.core import Connection, Runtime
from msgflo.runtime.protocol import component, graph, network, observe, runtime, trace
from msgflo.runtime.protocol.messages import ProtocolError, error
from msgflo.runtime.request import Request

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[None]]
MODULES: Mapping[str, ModuleType] = {
    "runtime": runtime,
    "graph": graph,
    "component": component,
    "network": network,
    "trace": trace,
    "msgflo": observe,
}

REFUSED = (ProtocolError, GraphError, CoordinatorError, LibraryError)


class Dispatcher:
    def __init__(self, rt: Runtime) -> None:
        self.runtime = rt

    async def handle(self, connection: Connection, text: str | bytes) -> None:
        """Handle one frame; shielded so that a client closing its connection cannot cut a
        graph edit in two."""
        task = asyncio.ensure_future(self._handle(connection, text))
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    async def _handle(self, connection: Connection, text: str | bytes) -> None:
        try:
            raw = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            await self._error(connection, "runtime", f"message is not JSON: {exc}", None)
            return
        if not isinstance(raw, dict):
            await self._error(connection, "runtime", "message must be a JSON object", None)
            return
        request_id = raw.get("requestId") if isinstance(raw.get("requestId"), str) else None
        protocol, command = raw.get("protocol"), raw.get("command")
        if not isinstance(protocol, str) or not isinstance(command, str):
            await self._error(
                connection, "runtime", "message needs 'protocol' and 'command' strings", request_id
            )
            return
        module = MODULES.get(protocol)
        if module is None:
            await self._error(
                connection, "runtime", f"Protocol {protocol} is not supported", request_id
            )
            return
        handlers: Mapping[str, Handler] = module.COMMANDS
        handler = handlers.get(command)
        if handler is None:
            await self._error(
                connection, protocol, f"{protocol}:{command} not supported", request_id
            )
            return
        payload = raw.get("payload", {})
        if not isinstance(payload, dict):
            await self._error(
                connection,
                protocol,
                f"{protocol}:{command}: 'payload' must be an object",
                request_id,
            )
            return
        secret = _secret(raw, payload)
        level = self.runtime.options.access.level(secret)
        if level is None:
            await self._error(
                connection, protocol, f"{protocol}:{command}: invalid secret", request_id
            )
            return
        connection.level = level
        if not may_send(connection.capabilities, protocol, command):
            await self._error(
                connection, protocol, f"{protocol}:{command} is not permitted", request_id
            )
            return
        payload = {k: v for k, v in payload.items() if k != "secret"}
        request = Request(self.runtime, connection, protocol, command, payload, request_id)
        try:
            if command in module.UNLOCKED:
                await handler(request)
            else:
                async with self.runtime.lock:
                    await handler(request)
        except REFUSED as exc:
            await self._error(connection, protocol, str(exc), request_id)
        except Exception as exc:
            log.exception("%s:%s failed", protocol, command)
            await self._error(
                connection, protocol, f"{protocol}:{command} failed: {exc!r}", request_id
            )

    async def _error(
        self, connection: Connection, protocol: str, message: str, request_id: str | None
    ) -> None:
        await self.runtime.send(connection, error(protocol, message, request_id))


def _secret(raw: Mapping[str, Any], payload: Mapping[str, Any]) -> str | None:
    """Top level (protocol 0.8) or in the payload (older clients, fbp-spec's client)."""
    for where in (raw, payload):
        value = where.get("secret")
        if isinstance(value, str) and value:
            return value
    return None
