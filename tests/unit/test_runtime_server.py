"""The runtime's HTTP side under clients that go away: an aborted WebSocket handshake is one
debug line, never a traceback, and the runtime keeps serving."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest

from tests.unit import test_runtime_support as support
from tests.unit.test_runtime_support import Rig

rig, rig_factory = support.rig, support.rig_factory

HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def test_aborted_handshakes_log_one_debug_line_each(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = rig.http.port
    assert port is not None
    for _ in range(50):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HANDSHAKE)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
    peer = await rig.connect()
    reply = await peer.request("runtime", "getruntime", reply="runtime")
    assert reply["payload"]["type"] == "msgflo"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    aborted = [r for r in caplog.records if "handshake" in r.getMessage()]
    assert aborted and all(r.levelno == logging.DEBUG and not r.exc_info for r in aborted)
    assert all("\n" not in r.getMessage() for r in aborted)
