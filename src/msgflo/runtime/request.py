"""One client request as the protocol handlers see it: who sent it, how to answer, and its
payload's fields read with the checks every handler needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from msgflo.graph import PortRef
from msgflo.runtime.core import Connection, Runtime
from msgflo.runtime.protocol.messages import ProtocolError, build


@dataclass
class Request:
    """One client request, with typed access to its payload: a missing or mistyped field is a
    :class:`ProtocolError` naming the field."""

    runtime: Runtime
    connection: Connection
    protocol: str
    command: str
    payload: dict[str, Any]
    request_id: str | None = None

    @property
    def origin(self) -> tuple[Connection, str | None]:
        return self.connection, self.request_id

    async def reply(self, command: str, payload: Any, protocol: str | None = None) -> None:
        await self.runtime.send(
            self.connection, build(protocol or self.protocol, command, payload, self.request_id)
        )

    async def broadcast(self, command: str, payload: Any, protocol: str | None = None) -> None:
        await self.runtime.broadcast(protocol or self.protocol, command, payload, self.origin)

    def _field(self, key: str, kind: type | tuple[type, ...], what: str, required: bool) -> Any:
        value = self.payload.get(key)
        if value is None:
            if required:
                raise ProtocolError(f"{self.protocol}:{self.command}: '{key}' is missing")
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
            raise ProtocolError(f"{self.protocol}:{self.command}: '{key}' must be {what}")
        return value

    def text(self, key: str) -> str:
        value: str = self._field(key, str, "a string", True)
        if not value:
            raise ProtocolError(f"{self.protocol}:{self.command}: '{key}' must not be empty")
        return value

    def optional_text(self, key: str) -> str | None:
        value: str | None = self._field(key, str, "a string", False)
        return value

    def flag(self, key: str) -> bool | None:
        value: bool | None = self._field(key, bool, "true or false", False)
        return value

    def number(self, key: str) -> int | None:
        value: int | None = self._field(key, int, "an integer", False)
        return value

    def mapping(self, key: str, *, required: bool = False) -> dict[str, Any]:
        value = self._field(key, dict, "an object", required)
        return dict(value) if value is not None else {}

    def strings(self, key: str) -> list[str]:
        value = self._field(key, list, "a list of strings", True)
        if not all(isinstance(item, str) for item in value):
            raise ProtocolError(
                f"{self.protocol}:{self.command}: '{key}' must be a list of strings"
            )
        return list(value)

    def port(self, key: str) -> PortRef:
        raw = self._field(key, dict, "an object with 'node' and 'port'", True)
        node, port, index = raw.get("node"), raw.get("port"), raw.get("index")
        if not isinstance(node, str) or not isinstance(port, str) or not node or not port:
            raise ProtocolError(
                f"{self.protocol}:{self.command}: '{key}' needs 'node' and 'port' strings"
            )
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            raise ProtocolError(f"{self.protocol}:{self.command}: '{key}.index' must be an integer")
        return PortRef(node, port, index)


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
