"""Losing a broker connection and getting it back, the same way for every transport.

A transport supplies three steps (wait for the loss, open a new connection, note that it is
back); :func:`supervise` runs them forever with one backoff policy and one way of logging, and
:func:`cause` turns whatever a client library or the OS raised into one readable line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from msgflo.transport.base import Client, TransportError
from msgflo.transport.tls import verification_failure

log = logging.getLogger(__name__)

BACKOFF_START = 0.2
BACKOFF_CAP = 5.0
REFUSED_CERTIFICATE_DELAY = 60.0
"""Between reconnect attempts while the broker's certificate does not verify: that does not
change by trying again (only when someone replaces the certificate or the CA)."""


@dataclass(slots=True)
class Backoff:
    """Delays between attempts: doubling from ``start`` up to ``cap``, so a broker that is down
    for minutes costs one attempt every few seconds, and a short cut costs a fraction of one."""

    start: float = BACKOFF_START
    cap: float = BACKOFF_CAP
    delay: float = 0.0

    def next(self) -> float:
        self.delay = self.start if not self.delay else min(self.delay * 2, self.cap)
        return self.delay


def cause(exc: BaseException) -> str:
    """One readable line from an exception raised by paho, aiomqtt, aiormq or the OS."""
    refused = verification_failure(exc)
    if refused is not None:
        return refused
    if isinstance(exc, TimeoutError):
        return "no answer from the broker"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.errno:  # the socket's errno says it best
        return os.strerror(exc.errno).lower()
    inner = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], BaseException) else None
    if inner is not None:
        return cause(inner)
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip() or type(exc).__name__
    if text[1:2].isupper():  # an acronym or a broker's reply code (``RESOURCE_LOCKED - ...``)
        return text
    return text[0].lower() + text[1:]


def connect_error(client: Client, exc: BaseException, reason: str | None = None) -> TransportError:
    """The error a failed :meth:`Client.connect` raises: the URL (no password) and the cause."""
    return TransportError(f"cannot connect to {client.address.redacted()}: {reason or cause(exc)}")


async def supervise(
    client: Client,
    *,
    lost: Callable[[], Awaitable[BaseException | None]],
    reopen: Callable[[], Awaitable[None]],
    describe: Callable[[BaseException], str] = cause,
) -> None:
    """Forever: wait until ``lost()`` returns (the connection is gone, maybe with its cause),
    call ``reopen()`` until it succeeds (with backoff), then tell the client's reconnect
    listeners so participants announce themselves again."""
    where = client.address.redacted()
    while True:
        why = await lost()
        log.warning(
            "lost connection to %s (%s); reconnecting", where, describe(why) if why else "closed"
        )
        backoff = Backoff()
        while True:
            try:
                await reopen()
                break
            except (Exception, TimeoutError) as exc:
                delay = backoff.next()
                if verification_failure(exc) is not None:
                    delay = REFUSED_CERTIFICATE_DELAY
                    log.error("reconnect to %s refused: %s", where, describe(exc))
                else:
                    log.info(
                        "reconnect to %s failed (%s); next try in %.1f s",
                        where,
                        describe(exc),
                        delay,
                    )
                await asyncio.sleep(delay)
        log.info("reconnected to %s", where)
        try:
            await client._notify_reconnected()
        except Exception:
            log.exception("a reconnect listener failed")
