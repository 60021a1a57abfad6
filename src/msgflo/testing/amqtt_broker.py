"""An in-process amqtt broker on a free 127.0.0.1 port, for tests that must not need Mosquitto.

The configuration is the smallest that works: one TCP listener, anonymous clients allowed, and
none of amqtt's default plugins that log every packet or publish ``$SYS`` topics (they cost
throughput and fill test logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from amqtt.broker import Broker

_QUIET_LOGGERS = ("amqtt", "transitions")


def _config() -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:0"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


def _bound_port(broker: Any) -> int:
    """amqtt does not report the port the OS chose for ``:0``; read it off the listening socket."""
    server = broker._servers["default"].instance
    port: int = server.sockets[0].getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def embedded_mqtt_broker(*, log_level: int = logging.WARNING) -> AsyncIterator[str]:
    """Run an amqtt broker for the duration of the block and yield its ``mqtt://`` URL."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(log_level, logging.getLogger(name).level))
    broker = Broker(_config(), loop=asyncio.get_running_loop())
    await broker.start()
    try:
        yield f"mqtt://127.0.0.1:{_bound_port(broker)}"
    finally:
        await broker.shutdown()
