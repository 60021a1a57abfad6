"""A small FBP network protocol client over WebSocket: what msgflo-spec needs to drive any FBP
runtime (ours, NoFlo, MicroFlo...), with a timeout on every request.

Every message the runtime sends is also kept in one stream that observers read, so a case can
wait for output packets that arrive while other requests are still being answered.

It speaks WebSocket through ``websockets`` rather than aiohttp: importing aiohttp's client
loads the system's CA certificates twice, a tenth of a second that every ``msgflo-spec`` run
would pay before its first case.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.protocol import State
from websockets.typing import Subprotocol

from msgflo.errors import ConnectError, ProtocolError

REQUIRED_CAPABILITIES = ("protocol:graph", "protocol:network", "protocol:runtime")


@dataclass(frozen=True)
class Signal:
    """One message from the runtime."""

    protocol: str
    command: str
    payload: Any


class CommandFailed(ProtocolError):
    """The runtime answered a request with an error, or not within the command timeout."""


class FbpClient:
    def __init__(self, address: str, secret: str = "", command_timeout: float = 3.0) -> None:
        self.address = address
        self.secret = secret
        self.command_timeout = command_timeout
        self.definition: dict[str, Any] = {}
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._observers: list[asyncio.Queue[Signal | None]] = []

    async def connect(self, start_timeout: float = 10.0) -> None:
        """Connect, retrying until ``start_timeout`` (the runtime may still be starting), then
        ask for the runtime's definition and check it can run specs."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + start_timeout
        cause: Exception | None = None
        while True:
            try:
                self._ws = await connect(
                    self.address,
                    subprotocols=[Subprotocol("noflo")],
                    open_timeout=max(1.0, deadline - loop.time()),
                    close_timeout=2,
                    ping_interval=None,
                    max_size=None,
                )
                break
            except (WebSocketException, OSError, TimeoutError) as exc:
                cause = exc
            if loop.time() >= deadline:
                await self.close()
                raise ConnectError(
                    f"cannot reach the FBP runtime at {self.address}: {_describe(cause)}"
                ) from cause
            await asyncio.sleep(0.2)
        self._reader = asyncio.create_task(self._read())
        self.definition = await self.request("runtime", "getruntime", {}, ("runtime",))
        capabilities = self.definition.get("capabilities") or []
        missing = [c for c in REQUIRED_CAPABILITIES if c not in capabilities]
        if missing:
            await self.close()
            raise ConnectError(
                f"the FBP runtime at {self.address} lacks {', '.join(missing)} "
                "(wrong secret, or a runtime that cannot run specs)"
            )

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._ws = self._reader = None

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                if not isinstance(frame, str):
                    continue
                try:
                    raw = orjson.loads(frame)
                    signal = Signal(raw["protocol"], raw["command"], raw.get("payload"))
                except (ValueError, KeyError, TypeError):
                    continue
                for queue in self._observers:
                    queue.put_nowait(signal)
        except ConnectionClosed:
            pass  # observers learn it from the None below
        finally:
            for queue in self._observers:
                queue.put_nowait(None)

    @contextlib.asynccontextmanager
    async def observe(self) -> AsyncIterator[asyncio.Queue[Signal | None]]:
        """Every signal from now until the block ends (``None`` once the connection is gone)."""
        queue: asyncio.Queue[Signal | None] = asyncio.Queue()
        self._observers.append(queue)
        try:
            yield queue
        finally:
            self._observers.remove(queue)

    async def send(self, protocol: str, command: str, payload: dict[str, Any]) -> None:
        if self._ws is None or self._ws.state is not State.OPEN:
            raise ConnectError(f"disconnected from the FBP runtime at {self.address}")
        message = {"protocol": protocol, "command": command, "payload": payload}
        if self.secret:
            message["payload"] = {**payload, "secret": self.secret}
        try:
            await self._ws.send(orjson.dumps(message).decode())
        except ConnectionClosed as exc:
            raise ConnectError(f"disconnected from the FBP runtime at {self.address}") from exc

    async def request(
        self, protocol: str, command: str, payload: dict[str, Any], answers: tuple[str, ...]
    ) -> Any:
        """Send a command and wait for its answer (one of ``answers``, or an error)."""
        async with self.observe() as signals:
            await self.send(protocol, command, payload)
            try:
                async with asyncio.timeout(self.command_timeout):
                    while True:
                        signal = await signals.get()
                        if signal is None:
                            raise ConnectError(
                                f"the FBP runtime at {self.address} closed the connection"
                            )
                        if signal.protocol != protocol:
                            continue
                        if signal.command == "error":
                            text = (signal.payload or {}).get("message", signal.payload)
                            raise CommandFailed(f"{protocol}:{command} refused: {text}")
                        if signal.command in answers:
                            return signal.payload
            except TimeoutError as exc:
                raise CommandFailed(
                    f"{protocol}:{command}: no answer within {self.command_timeout:g} s"
                ) from exc


def _describe(exc: Exception | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, InvalidStatus):
        response = exc.response
        return f"WebSocket handshake refused ({response.status_code} {response.reason_phrase})"
    if isinstance(exc, OSError):
        return str(exc.strerror or exc)
    if isinstance(exc, TimeoutError):
        return "no WebSocket handshake in time"
    return str(exc) or type(exc).__name__
