"""``msgflo:observe``: a client asks for the running graph's figures (docs/observing.md).

``{"protocol": "msgflo", "command": "observe", "payload": {"graph", "enable": true|false}}``;
while enabled, the client gets ``msgflo:figures`` (per-edge rate, depth, state and flags, per
node instances, restarts, errors) at once and then every second.  A protocol of its own, so a
client that never asks never sees a message its schemas do not know.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from msgflo.runtime.observe_api import observing
from msgflo.runtime.protocol.messages import ProtocolError
from msgflo.runtime.request import Request


async def observe(req: Request) -> None:
    graph_id, _ = req.runtime.graph(req.payload)
    enable = req.flag("enable")
    state = observing(req.runtime)
    if state is None:
        raise ProtocolError("msgflo:observe: figures are not collected by this runtime")
    await state.follow(req.connection, graph_id, enable is not False, req.request_id)


COMMANDS: dict[str, Callable[[Request], Awaitable[None]]] = {"observe": observe}
UNLOCKED: frozenset[str] = frozenset({"observe"})
