"""What the AMQP transport says when the broker or the connection fails: one line, the broker's
own words where it gave any."""

from __future__ import annotations

import aiormq.exceptions

from msgflo.transport.reconnect import cause


def describe(exc: BaseException) -> str:
    """Why a connection or a call failed; a refused login says what to check."""
    if isinstance(
        exc, aiormq.exceptions.ProbableAuthenticationError | aiormq.exceptions.AuthenticationError
    ):
        return "authentication failed (check user and password)"
    return cause(exc)


def refusal(exc: BaseException) -> str:
    """The broker's own reply text, e.g. ``PRECONDITION_FAILED - inequivalent arg 'durable' ...``."""
    if isinstance(exc, aiormq.exceptions.ChannelClosed) and len(exc.args) >= 2:
        return f"{exc.args[1]}"
    return describe(exc)
