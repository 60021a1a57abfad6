"""The runtime's HTTP and WebSocket server (aiohttp), on one port.

``GET /`` is the live view of the running network (:mod:`msgflo.runtime.live`, which also
serves its ``/api/network``, ``/api/edge`` and ``/api/send``); ``GET /api`` lists the running
network's nodes and queues as JSON (:mod:`msgflo.runtime.api`); a WebSocket upgrade
on any path speaks the FBP network protocol, with or without the ``noflo`` subprotocol
(fbp-protocol-client retries without it), to any number of clients at once.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import WSMsgType, web

from msgflo.runtime import live, observe_api
from msgflo.runtime.api import listing, refusal
from msgflo.runtime.core import Connection, Runtime
from msgflo.runtime.protocol.dispatch import Dispatcher

log = logging.getLogger(__name__)

SUBPROTOCOL = "noflo"
RUNTIME_KEY = web.AppKey("runtime", Runtime)
DISPATCHER_KEY = web.AppKey("dispatcher", Dispatcher)
INFO_KEY = web.AppKey("info", dict)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"


def live_url(ide: str, address: str, runtime_id: str, secret: str | None = None) -> str:
    """The Flowhub/noflo-ui link that opens this runtime (the original's format)."""
    query = f"protocol=websocket&address={address}&id={runtime_id}"
    if secret is not None:
        query += f"&secret={secret}"
    return f"{ide.rstrip('/')}/#runtime/endpoint?{quote(query, safe='')}"


def make_app(rt: Runtime, ide: str = "https://app.flowhub.io") -> web.Application:
    app = web.Application()
    app[RUNTIME_KEY] = rt
    app[DISPATCHER_KEY] = Dispatcher(rt)
    app[INFO_KEY] = {"ide": ide}
    app.router.add_get("/api", _api)
    observe_api.install(app, rt)
    live.install(app, rt)
    app.router.add_get("/{tail:.*}", _entry)
    return app


async def _entry(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await _websocket(request)
    return _page(request)


async def _api(request: web.Request) -> web.StreamResponse:
    """The same secrets as the FBP protocol: reading the network needs read access."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await _websocket(request)
    rt = request.app[RUNTIME_KEY]
    return refusal(rt, request) or web.json_response(listing(rt))


def _page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME_KEY]
    address = f"ws://{request.host}"
    return live.page(rt, address, live_url(request.app[INFO_KEY]["ide"], address, rt.options.id))


async def _websocket(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME_KEY]
    dispatcher = request.app[DISPATCHER_KEY]
    ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), heartbeat=30)
    try:
        await ws.prepare(request)
    except ConnectionError as exc:
        log.debug("WebSocket handshake from %s aborted: %s", request.remote, exc)
        return web.Response()  # aiohttp writes nothing more to a closed connection
    connection = Connection(
        ws.send_str, rt.options.access.default, name=str(request.remote or "client")
    )
    rt.connections.add(connection)
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await dispatcher.handle(connection, message.data)
    finally:
        rt.connections.discard(connection)
    return ws


@contextlib.asynccontextmanager
async def serve(
    rt: Runtime, host: str, port: int, ide: str = "https://app.flowhub.io"
) -> AsyncIterator[Endpoint]:
    """Listen on ``host:port`` (port 0: any free one) until the block ends."""
    runner = web.AppRunner(make_app(rt, ide), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        server = site._server
        sockets: list[socket.socket] = list(getattr(server, "sockets", None) or [])
        bound = sockets[0].getsockname()[1] if sockets else port
        yield Endpoint(host, int(bound))
    finally:
        await runner.cleanup()
