"""Running participants as a process: broker choice, ready line, signals, clean exit.

The process contract is what coordinators and test tools rely on: nothing on stdout or stderr
until the participant is up, then exactly one line on stdout (flushed) per participant, and on
SIGTERM/SIGINT a clean stop with exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import click

from msgflo.logs import setup_logging
from msgflo.participant import Participant
from msgflo.transport import Address, Client, TransportError, broker_url_from_env, get_client

DEFAULT_BROKER = "amqp://localhost"
"""What every original library falls back to when no broker is configured."""
SHUTDOWN_GRACE = 5.0
"""Seconds a stopping participant may spend finishing and confirming before it exits anyway
(``MSGFLO_SHUTDOWN_GRACE`` overrides it)."""

log = logging.getLogger(__name__)


def ready_line(participant: Participant, url: str) -> str:
    return f"{participant.role}({participant.definition['component']}) ready on {url}"


async def serve(
    participants: Sequence[Participant],
    broker: str,
    *,
    iips: Mapping[str, Any] | None = None,
    connect_timeout: float = 30.0,
    stop: asyncio.Event | None = None,
) -> None:
    """Connect, start every participant, deliver command-line IIPs, run until ``stop`` is set
    (or SIGINT/SIGTERM arrives), then stop cleanly."""
    client = get_client(broker, connect_timeout=connect_timeout)
    await client.connect()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        for participant in participants:
            await participant.start(client, announce=False)
        for participant in participants:
            for port, data in (iips or {}).items():
                await participant.deliver(port, data)
        shown = Address.parse(broker).redacted()
        for participant in participants:
            print(ready_line(participant, shown), flush=True)
        # Announced only now: a harness that waits for the ready line and then for discovery
        # (the original's heterogenous spec) must not see the announcement first.  Not awaited:
        # with the broker away an announcement waits for it, and a signal must still stop us.
        announcing = loop.create_task(_announce(participants))
        await stop.wait()
        announcing.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal ends the process at once
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await within_grace(_shutdown(participants, client))


async def within_grace(cleanup: Awaitable[None]) -> None:
    """Run a stopping process's cleanup, but never longer than the grace period: with the
    broker away, finishing and confirming would wait for a reconnection that may not come."""
    grace = float(os.environ.get("MSGFLO_SHUTDOWN_GRACE") or SHUTDOWN_GRACE)
    try:
        await asyncio.wait_for(cleanup, grace)
    except TimeoutError:
        log.warning("not stopped cleanly within %g s (is the broker reachable?)", grace)


async def until_stopped(work: Awaitable[None], stop: asyncio.Event) -> None:
    """Do ``work`` unless ``stop`` is set first; then it is abandoned (a signal must end a
    process even while its broker is away)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for pending in (task, stopped):
        pending.cancel()
    if task.done() and not task.cancelled():
        task.result()  # what the work raised


async def _announce(participants: Sequence[Participant]) -> None:
    for participant in participants:
        try:
            await participant.announce()
        except TransportError as exc:  # the heartbeat tries again
            log.warning("%s: discovery not sent: %s", participant.role, exc)


async def _shutdown(participants: Sequence[Participant], client: Client) -> None:
    """Finish the messages in hand and confirm what was sent; bounded by the caller, because
    a broker that is away would make both wait for a reconnection."""
    for participant in participants:
        await participant.stop()
    await client.disconnect()


def _event_loop_runner() -> Callable[..., Any]:
    """uvloop when installed (the ``speed`` extra), the standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    run: Callable[..., Any] = uvloop.run
    return run


def run_participants(
    participants: Sequence[Participant],
    broker: str | None = None,
    *,
    iips: Mapping[str, Any] | None = None,
    connect_timeout: float = 30.0,
    program: str = "msgflo",
) -> None:
    """Blocking entry point: exit code 1 with one line on stderr when the broker fails."""
    # imported here: the commands' helpers build on this module's logging setup
    from msgflo.cli.common import one_line_errors

    url = broker_url_from_env(broker, DEFAULT_BROKER)
    assert url is not None
    setup_logging()
    try:
        with one_line_errors(program):
            _event_loop_runner()(
                serve(participants, url, iips=iips, connect_timeout=connect_timeout)
            )
    except KeyboardInterrupt:
        pass


def instantiate(target: type[Participant] | Participant, role: str) -> Participant:
    if isinstance(target, Participant):
        if role and role != target.role:
            target.set_role(role)
        return target
    participant = target(role)
    if participant.role != role:
        participant.set_role(role)
    return participant


def parse_iips(raw: str | None) -> dict[str, Any]:
    """``--iips '{"port": data}'``: a usage error names what is wrong with the JSON."""
    if not raw:
        return {}
    import orjson

    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--iips") from exc
    if not isinstance(value, dict):
        raise click.BadParameter(
            "must be a JSON object of inport to data, e.g. '{\"in\": 1}'", param_hint="--iips"
        )
    return value
