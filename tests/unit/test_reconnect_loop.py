"""The shared reconnect loop: a broker certificate that does not verify is not retried at the
pace of a passing outage (no retry storm), and is said at error level."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest

from msgflo.transport import get_client, reconnect


def refused() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "unable to get local issuer certificate"
    return error


async def run_loop(monkeypatch: pytest.MonkeyPatch, failure: BaseException) -> list[float]:
    """Let the loop lose the connection once and fail three reopen attempts; the delays it
    chose between them."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    client = get_client("memory://reconnect-loop")
    lost_once = asyncio.Event()
    attempts = 0
    back = asyncio.Event()

    async def lost() -> BaseException | None:
        if lost_once.is_set():
            await asyncio.Event().wait()
        lost_once.set()
        return ConnectionResetError(104, "reset")

    async def reopen() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise failure
        back.set()

    task = asyncio.create_task(reconnect.supervise(client, lost=lost, reopen=reopen))
    await asyncio.wait_for(back.wait(), 5)
    task.cancel()
    return delays


async def test_a_refused_certificate_is_retried_slowly_and_said_as_an_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="msgflo.transport.reconnect"):
        delays = await run_loop(monkeypatch, refused())
    assert delays == [reconnect.REFUSED_CERTIFICATE_DELAY] * 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert "TLS certificate verification failed: unable to get local issuer" in errors[0].message


async def test_an_outage_backs_off_from_a_fraction_of_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    delays = await run_loop(monkeypatch, ConnectionRefusedError(111, "refused"))
    assert delays == [
        reconnect.BACKOFF_START,
        reconnect.BACKOFF_START * 2,
        reconnect.BACKOFF_START * 4,
    ]
