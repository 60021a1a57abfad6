"""Opening a NATS connection, and reading what the server and nats-py say.

nats-py reconnects by itself once connected; before that, it would retry a wrong password or
an absent server until its timeout and then say only that time ran out.  :func:`dial` fails at
the first refusal instead, with its cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as Connection

from msgflo.transport.base import Address, TransportError

log = logging.getLogger("msgflo.transport.nats")
"""One logger for the whole transport, whichever of its modules speaks."""

DEFAULT_PORT = 4222
RECONNECT_WAIT = 0.5
PENDING_HEADER = "Nats-Pending-Messages"


def status_of(headers: bytes) -> tuple[str, str]:
    """The status code of raw NATS headers (``NATS/1.0 408 Request Timeout``), ``""`` for
    none, and the value of :data:`PENDING_HEADER` (how many messages of an expired pull
    request were not delivered), ``""`` when absent."""
    lines = headers.decode(errors="replace").split("\r\n")
    first = lines[0].split(maxsplit=2)
    status = first[1] if len(first) > 1 and first[1].isdigit() else ""
    pending = ""
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == PENDING_HEADER.lower():
            pending = value.strip()
    return status, pending


def cause(exc: BaseException) -> str:
    """One readable line from whatever nats-py or the OS raised."""
    if isinstance(exc, nats.js.errors.APIError) and exc.description:
        return str(exc.description)
    if isinstance(exc, TimeoutError):
        return "no answer from the server"
    if isinstance(exc, OSError) and exc.errno:
        return f"{os.strerror(exc.errno).lower()} ({exc})"
    text = str(exc).removeprefix("nats: ").strip("'\" ") or type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return text[0].lower() + text[1:]


def _tls(address: Address) -> ssl.SSLContext | None:
    if address.scheme != "tls":
        return None
    opts = address.options
    context = ssl.create_default_context(cafile=opts.get("ca_certs"))
    if opts.get("certfile"):
        context.load_cert_chain(opts["certfile"], opts.get("keyfile"))
    return context


async def dial(
    address: Address,
    timeout: float,
    *,
    live: Callable[[], bool],
    disconnected: Callable[[], Awaitable[None]],
    reconnected: Callable[[], Awaitable[None]],
) -> Connection:
    """Connect, or fail at the first refusal.  Errors nats-py reports later are logged while
    ``live()`` says the connection is in use; the two callbacks hear of its cuts."""
    where = address.redacted()
    loop = asyncio.get_running_loop()
    first_error: asyncio.Future[BaseException] = loop.create_future()

    async def on_error(exc: Exception) -> None:
        if not first_error.done():
            first_error.set_result(exc)
        elif live():
            log.warning("%s: %s", where, cause(exc))

    nc = Connection()
    opening = loop.create_task(
        nc.connect(
            servers=[
                f"{address.scheme}://{address.host or '127.0.0.1'}:{address.port or DEFAULT_PORT}"
            ],
            user=address.username,
            password=address.password,
            tls=_tls(address),
            connect_timeout=max(1, int(timeout)),
            reconnect_time_wait=RECONNECT_WAIT,  # type: ignore[arg-type]
            max_reconnect_attempts=-1,
            error_cb=on_error,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            name="msgflo",
        )
    )
    try:
        waiting: list[asyncio.Future[Any]] = [opening, first_error]
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when="FIRST_COMPLETED")
        if opening in done:
            opening.result()
        else:
            refusal = first_error.result() if first_error in done else TimeoutError()
            raise TransportError(f"cannot connect to {where}: {cause(refusal)}")
    except (nats.errors.Error, OSError, ssl.SSLError) as exc:
        raise TransportError(f"cannot connect to {where}: {cause(exc)}") from exc
    finally:
        if not opening.done() or opening.exception() is not None:
            opening.cancel()
            with contextlib.suppress(BaseException):
                await nc.close()
    if not first_error.done():
        first_error.set_result(ConnectionError("connected"))
    return nc
