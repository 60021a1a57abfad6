"""``trace``: record a graph's network events and hand them out as a Flowtrace."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson

from msgflo.runtime.protocol.messages import ProtocolError
from msgflo.runtime.request import Request
from msgflo.runtime.tracing import Trace, now_iso

FLOWTRACE = "flowtrace.json"


def _trace(req: Request) -> tuple[str, Trace]:
    graph_id, _ = req.runtime.graph(req.payload)
    return graph_id, req.runtime.traces.setdefault(graph_id, Trace())


async def start(req: Request) -> None:
    graph_id, trace = _trace(req)
    buffersize = req.number("buffersize")
    trace.start(buffersize)
    trace.started = trace.started or now_iso()
    await req.reply("start", {"graph": graph_id, "buffersize": buffersize})


async def stop(req: Request) -> None:
    graph_id, trace = _trace(req)
    trace.enabled = False
    await req.reply("stop", {"graph": graph_id})


async def clear(req: Request) -> None:
    graph_id, trace = _trace(req)
    trace.events.clear()
    await req.reply("clear", {"graph": graph_id})


async def dump(req: Request) -> None:
    rt = req.runtime
    graph_id, trace = _trace(req)
    kind = req.text("type")
    if kind != FLOWTRACE:
        raise ProtocolError(f"trace:dump: unknown type {kind!r} (only {FLOWTRACE})")
    document = {
        "header": {
            "metadata": {
                "runtime": rt.options.id,
                "type": "msgflo",
                "start": trace.started or now_iso(),
                "end": now_iso(),
            },
            "graphs": {graph_id: rt.graphs[graph_id].to_json()},
            "main": graph_id,
        },
        "events": list(trace.events),
    }
    await req.reply(
        "dump", {"graph": graph_id, "type": kind, "flowtrace": orjson.dumps(document).decode()}
    )


COMMANDS: dict[str, Callable[[Request], Awaitable[None]]] = {
    "start": start,
    "stop": stop,
    "clear": clear,
    "dump": dump,
}
UNLOCKED: frozenset[str] = frozenset()
