"""A TCP proxy that can cut connections, for resilience tests against real brokers.

Restarting the shared broker in a test would disturb every other test; cutting the TCP path of
one client is what a network failure or broker restart looks like from that client's side.
"""

from __future__ import annotations

import asyncio
import contextlib


class FaultProxy:
    """Forwards 127.0.0.1:<port> to ``target``; :meth:`cut` drops every connection,
    :meth:`block` refuses new ones until :meth:`unblock` (a broker that is down)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._blocked = False

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, scheme: str, userinfo: str = "", suffix: str = "") -> str:
        auth = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}{suffix}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._blocked:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(dst)
            dst.close()

    def cut(self) -> None:
        """Close every open connection abruptly, both directions."""
        for writer in list(self._writers):
            transport = writer.transport
            if transport is not None:
                transport.abort()
        self._writers.clear()

    def block(self) -> None:
        self._blocked = True
        self.cut()

    def unblock(self) -> None:
        self._blocked = False

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
