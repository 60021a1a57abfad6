"""The alive ping: tells a runtime registry (Flowhub's, by default) that this runtime is up.

As in the original ``msgflo``: with an interval above 0, one HTTP request (``--ping-method`` to
``--ping-url``, with ``$RUNTIME_ID`` replaced by the runtime id, no body) goes out at once and
then every interval.  Only a 200 answer counts as success; another status, no answer within
:data:`TIMEOUT` or a failed connection is logged, and the next ping is tried as usual: a
registry that is away never stops the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.flowhub.io/runtimes/$RUNTIME_ID"
TIMEOUT = 10.0
"""Seconds a ping may take, as in the original."""


@dataclass(frozen=True, slots=True)
class AlivePing:
    """What ``--ping-url``, ``--ping-method`` and ``--ping-interval`` asked for."""

    url: str = DEFAULT_URL
    method: str = "POST"
    interval: float = 0.0
    """Seconds between pings; 0 sends none."""

    def target(self, runtime_id: str) -> str:
        return self.url.replace("$RUNTIME_ID", runtime_id)


async def ping_once(session: aiohttp.ClientSession, method: str, url: str) -> str | None:
    """Send one ping; ``None`` when it succeeded, else why it did not."""
    try:
        async with session.request(method, url) as response:
            if response.status != 200:
                return f"answered {response.status} {response.reason or ''}".rstrip()
    except TimeoutError:
        return f"no answer within {TIMEOUT:g} s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None


async def _ping_forever(ping: AlivePing, runtime_id: str) -> None:
    url = ping.target(runtime_id)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            failure = await ping_once(session, ping.method, url)
            if failure is None:
                log.debug("alive ping %s %s: ok", ping.method, url)
            else:
                log.warning("alive ping %s %s failed: %s", ping.method, url, failure)
            await asyncio.sleep(ping.interval)


@contextlib.asynccontextmanager
async def alive_ping(ping: AlivePing, runtime_id: str) -> AsyncIterator[None]:
    """Ping in the background for the duration of the block (not at all with interval 0)."""
    if ping.interval <= 0:
        yield
        return
    task = asyncio.create_task(_ping_forever(ping, runtime_id))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
