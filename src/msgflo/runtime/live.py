"""The live view at ``/`` and the JSON endpoints it reads and writes.

- ``GET /api/network``: the observer's snapshot (:mod:`msgflo.observe.network`, renewed every
  second; read access), with ``access`` telling the page whether it may send;
- ``GET /api/edge?id=EDGE``: the newest packets seen on an edge; the first request starts
  watching it (read access);
- ``POST /api/send`` ``{"node", "port", "data"}``: one packet to an inport (full access).

The page itself and its assets (``src/msgflo/web/``) carry no data, so they are served to
anyone; everything it shows comes through the endpoints above, which honour the runtime's
secrets like ``GET /api`` and the FBP protocol.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import Any

from aiohttp import web

from msgflo.coordinator import Coordinator, CoordinatorError, Event, EventKind
from msgflo.observe.network import edge_label as edge_key
from msgflo.runtime import observe_api
from msgflo.runtime.access import Level
from msgflo.runtime.api import refusal, request_level
from msgflo.runtime.core import Runtime
from msgflo.transport import TransportError
from msgflo.wiring import Endpoint, Link

Provider = Callable[[Runtime], dict[str, Any]]


def observed(rt: Runtime) -> dict[str, Any]:
    """The observer's newest snapshot, its edges copied since the view fills in rates."""
    state = observe_api.observing(rt)
    if state is None:
        return {}
    snapshot = state.observer.snapshot
    return {**snapshot, "edges": [dict(edge) for edge in snapshot.get("edges", [])]}


NETWORK_KEY = web.AppKey[Provider]("network")
"""What ``/api/network`` serves; tests put a provider of their own here."""

PACKETS = 20
"""Packets kept per watched edge."""
RATE_WINDOW = 5.0
"""Seconds over which a watched edge's rate is counted."""

ASSETS = {"live.js": "text/javascript", "live.css": "text/css"}
_dumps = functools.partial(json.dumps, default=str)


@dataclass
class Seen:
    since: float = field(default_factory=time.monotonic)
    packets: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=PACKETS))
    arrivals: deque[float] = field(default_factory=deque)

    def rate(self, now: float) -> float | None:
        """Messages per second over the last :data:`RATE_WINDOW` seconds (or since watching
        began); ``None`` in the first second, when a count means little."""
        while self.arrivals and now - self.arrivals[0] > RATE_WINDOW:
            self.arrivals.popleft()
        elapsed = min(RATE_WINDOW, now - self.since)
        return None if elapsed < 1.0 else len(self.arrivals) / elapsed


class EdgePackets:
    """The edges the page asked about: watched through the coordinator until the edge leaves
    the graph or the server stops, each with its newest packets and a rate counted from them."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.seen: dict[Link, Seen] = {}

    def on_event(self, event: Event) -> None:
        if event.kind is not EventKind.DATA:
            return
        edge = event.data.get("edge")
        seen = self.seen.get(edge) if isinstance(edge, Link) else None
        if seen is not None:
            seen.packets.append({"time": time.time(), "data": event.data.get("data")})
            seen.arrivals.append(time.monotonic())

    async def watch(self, edge: Link) -> Seen:
        seen = self.seen.get(edge)
        if seen is None:
            seen = self.seen[edge] = Seen()
            try:
                await self.coordinator.watch_edge(edge)
            except (CoordinatorError, TransportError):
                del self.seen[edge]
                raise
        return seen

    def overlay(self, network: dict[str, Any]) -> None:
        """Fill in the rate of watched edges where the snapshot has none; forget edges that
        are no longer in the graph."""
        for gone in set(self.seen) - set(self.coordinator.edges):
            del self.seen[gone]
        rates = {edge_key(edge): seen.rate(time.monotonic()) for edge, seen in self.seen.items()}
        for edge in network.get("edges", []):
            if edge.get("rate") is None and edge.get("id") in rates:
                edge["rate"] = rates[edge["id"]]

    async def close(self) -> None:
        for edge in list(self.seen):
            with contextlib.suppress(CoordinatorError, TransportError):
                await self.coordinator.unwatch_edge(edge)
        self.seen.clear()


PACKETS_KEY = web.AppKey("edge-packets", EdgePackets)
LIVE_RUNTIME_KEY = web.AppKey("live-runtime", Runtime)


def install(app: web.Application, rt: Runtime) -> None:
    """Add the view's endpoints to the runtime's app (before its catch-all route)."""
    packets = EdgePackets(rt.coordinator)
    app[LIVE_RUNTIME_KEY] = rt
    app[NETWORK_KEY] = observed
    app[PACKETS_KEY] = packets
    app.router.add_get("/api/network", _network)
    app.router.add_get("/api/edge", _edge)
    app.router.add_post("/api/send", _send)
    app.router.add_get("/live/{name}", _asset)

    async def start(_app: web.Application) -> None:
        rt.coordinator.add_listener(packets.on_event)

    async def stop(_app: web.Application) -> None:
        rt.coordinator.remove_listener(packets.on_event)
        await packets.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def page(rt: Runtime, address: str, link: str) -> web.Response:
    """The live view's HTML: the runtime's identity and how to connect to it, no data."""
    template = Template(_web_file("live.html"))
    values = {
        "label": rt.options.label,
        "runtime_id": rt.options.id,
        "address": address,
        "main": rt.main,
        "flowhub": link,
    }
    body = template.substitute({key: html.escape(value) for key, value in values.items()})
    return web.Response(text=body, content_type="text/html")


@functools.cache
def _web_file(name: str) -> str:
    return (resources.files("msgflo") / "web" / name).read_text(encoding="utf-8")


async def _asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return web.Response(
        text=_web_file(name),
        content_type=ASSETS[name],
        headers={"Cache-Control": "no-cache"},
    )


async def _network(request: web.Request) -> web.Response:
    rt = request.app[LIVE_RUNTIME_KEY]
    refused = refusal(rt, request, Level.READ)
    if refused is not None:
        return refused
    network = request.app[NETWORK_KEY](rt)
    request.app[PACKETS_KEY].overlay(network)
    network["access"] = str(request_level(rt, request))
    return web.json_response(network, dumps=_dumps)


async def _edge(request: web.Request) -> web.Response:
    rt = request.app[LIVE_RUNTIME_KEY]
    refused = refusal(rt, request, Level.READ)
    if refused is not None:
        return refused
    wanted = request.query.get("id", "")
    edge = next((e for e in rt.coordinator.edges if edge_key(e) == wanted), None)
    if edge is None:
        return web.json_response({"error": f"no edge {wanted!r} in the graph"}, status=404)
    try:
        seen = await request.app[PACKETS_KEY].watch(edge)
    except (CoordinatorError, TransportError) as exc:
        return web.json_response({"id": wanted, "error": str(exc)}, status=409)
    body = {"id": wanted, "rate": seen.rate(time.monotonic()), "packets": list(seen.packets)}
    return web.json_response(body, dumps=_dumps)


async def _send(request: web.Request) -> web.Response:
    rt = request.app[LIVE_RUNTIME_KEY]
    refused = refusal(rt, request, Level.FULL)
    if refused is not None:
        return refused
    try:
        body = json.loads(await request.text())
    except ValueError as exc:
        return web.json_response({"error": f"body: not JSON: {exc}"}, status=400)
    if not isinstance(body, dict) or "data" not in body:
        return web.json_response({"error": 'body: expected {"node", "port", "data"}'}, status=400)
    for key in ("node", "port"):
        if not isinstance(body.get(key), str) or not body[key]:
            return web.json_response({"error": f"body: {key!r} must be a string"}, status=400)
    if body["node"] not in rt.coordinator.nodes:
        return web.json_response({"error": f"no node {body['node']!r} in the graph"}, status=404)
    target = Endpoint(body["node"], body["port"])
    try:
        await rt.coordinator.send(target, body["data"])
    except CoordinatorError as exc:
        return web.json_response({"error": str(exc)}, status=409)
    return web.json_response({"sent": str(target)})
