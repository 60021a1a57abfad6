"""The embedded broker: an amqtt MQTT broker inside ``msgflo`` when no broker is configured.

It makes ``msgflo --graph x.fbp`` work on a machine with nothing installed.  It listens on
127.0.0.1 only (a development broker with anonymous access must not be reachable from the
network), on a port the OS picks so that two networks never collide, and loads none of amqtt's
default plugins, which log every packet and publish ``$SYS`` topics.  Production networks name
a real broker with ``--broker``; nothing else changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from msgflo.transport import TransportError, broker_url_from_env

_QUIET_LOGGERS = ("amqtt", "transitions")


def configured_broker(explicit: str | None = None) -> str | None:
    """``--broker``, then ``MSGFLO_BROKER``, then ``CLOUDAMQP_URL``; ``None`` means embed one."""
    return broker_url_from_env(explicit)


@contextlib.asynccontextmanager
async def embedded_broker(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run an amqtt broker for the duration of the block and yield its ``mqtt://`` URL."""
    try:
        from amqtt.broker import Broker
    except ImportError as exc:
        raise TransportError(
            f"no broker configured and the embedded one is unavailable ({exc}); "
            "install amqtt or pass --broker"
        ) from exc
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logging.WARNING, logger.level))
    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config, loop=asyncio.get_running_loop())
    try:
        await broker.start()
    except Exception as exc:
        raise TransportError(f"embedded broker could not listen on {host}:{port}: {exc}") from exc
    try:
        yield f"mqtt://{host}:{_bound_port(broker)}"
    finally:
        await broker.shutdown()


def _bound_port(broker: Any) -> int:
    """amqtt does not report the port the OS chose for ``:0``; read it off the listening socket."""
    server = broker._servers["default"].instance
    port: int = server.sockets[0].getsockname()[1]
    return port
