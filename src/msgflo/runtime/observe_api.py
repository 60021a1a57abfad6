"""The running network's figures on the runtime's port: ``GET /metrics`` (Prometheus),
the JSON snapshot behind ``GET /api/network`` (served with the live view, :mod:`.live`) and,
over the FBP protocol, ``msgflo:figures`` messages to the clients that asked for them with
``msgflo:observe``.

All three follow the runtime's access control: reading figures needs read access, as reading
the graph does.  The observer starts and stops with the HTTP server.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from msgflo.observe.metrics import CONTENT_TYPE, registry_for, render
from msgflo.observe.network import NetworkObserver
from msgflo.runtime.api import refusal
from msgflo.runtime.core import Connection, Runtime

PROTOCOL = "msgflo"
SCRAPED_RECENTLY = 120.0
"""While ``/metrics`` was asked for this recently, every tick renders it ahead of the scrape."""
READS = frozenset({"protocol:network", "network:data", "network:status"})
"""Capabilities that let a client follow figures (any of them)."""


@dataclass(eq=False)
class Observing:
    """The observer of one runtime and the protocol clients that follow it."""

    runtime: Runtime
    observer: NetworkObserver
    metrics: CollectorRegistry
    followers: dict[Connection, str] = field(default_factory=dict)
    """Connection to the graph it asked about."""
    _rendered: tuple[float, bytes] | None = None
    _scraped = float("-inf")

    def metrics_text(self) -> bytes:
        """What the newest tick rendered; a scrape answers from it without rendering (text
        exposition of a large network takes longer than a scrape should wait)."""
        self._scraped = time.monotonic()
        if self._rendered is None:
            self._render()
        assert self._rendered is not None
        return self._rendered[1]

    def _render(self) -> None:
        self._rendered = (self.observer.snapshot.get("time", 0.0), render(self.metrics))

    async def push(self, snapshot: dict[str, Any]) -> None:
        if time.monotonic() - self._scraped < SCRAPED_RECENTLY:
            self._render()
        for connection, graph in list(self.followers.items()):
            if connection not in self.runtime.connections or not (READS & connection.capabilities):
                self.followers.pop(connection, None)
                continue
            await self.runtime.send(connection, figures_message(graph, snapshot))

    async def follow(
        self, connection: Connection, graph: str, enable: bool, request_id: str | None
    ) -> None:
        if not enable:
            self.followers.pop(connection, None)
            return
        self.followers[connection] = graph
        message = figures_message(graph, self.observer.snapshot)
        if request_id is not None:
            message["responseTo"] = request_id
        await self.runtime.send(connection, message)


_observing: weakref.WeakKeyDictionary[Runtime, Observing] = weakref.WeakKeyDictionary()
OBSERVING_KEY = web.AppKey("observing", Observing)


def observing(rt: Runtime) -> Observing | None:
    """The figures of ``rt`` while its server runs."""
    return _observing.get(rt)


def figures_message(graph: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Per edge and per node what a graph editor can draw; empty when ``graph`` is not the
    running one."""
    running = snapshot.get("graph") == graph
    edges = [
        {k: e[k] for k in ("src", "tgt", "state", "rate", "depth", "stalled", "abnormal", "error")}
        for e in (snapshot.get("edges", []) if running else [])
    ]
    nodes = [
        {
            k: n[k]
            for k in ("name", "instances", "restarts", "stale", "errors", "nacks", "processing_ms")
        }
        for n in (snapshot.get("nodes", []) if running else [])
    ]
    payload = {"graph": graph, "time": snapshot.get("time"), "edges": edges, "nodes": nodes}
    return {"protocol": PROTOCOL, "command": "figures", "payload": payload}


def install(app: web.Application, rt: Runtime) -> None:
    """Add the routes and tie the observer to the server's life."""
    app.router.add_get("/metrics", _metrics)

    async def start(app: web.Application) -> None:
        observer = NetworkObserver(
            rt.coordinator, lambda: rt.running, management_url=rt.options.management_url
        )
        state = Observing(rt, observer, registry_for(observer))
        observer.on_snapshot(state.push)
        _observing[rt] = app[OBSERVING_KEY] = state
        await observer.start()

    async def stop(app: web.Application) -> None:
        state = _observing.pop(rt, None)
        if state is not None:
            await state.observer.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


async def _metrics(request: web.Request) -> web.Response:
    state = request.app[OBSERVING_KEY]
    refused = refusal(state.runtime, request)
    if refused is not None:
        return refused
    return web.Response(body=state.metrics_text(), headers={"Content-Type": CONTENT_TYPE})
