"""Why a message was dead-lettered, as it travels on each broker (see docs/deadletters.md).

A reason is a flat mapping of short names to text or whole numbers (``reason``, ``error``,
``type``, ``traceback``, ``role``, ``inport``, ``time``, ``attempt``, ``path``).  It crosses
the wire beside the original payload, never inside it, so that the participant on a
``DEAD_IN -> IN`` edge gets the bytes that failed, unchanged:

* RabbitMQ and memory: one message header per field, named ``msgflo-<field>``; a message that
  RabbitMQ itself dead-lettered (a Node participant's nack) has ``x-death`` instead, which is
  read into the same shape;
* MQTT 5 (``?version=5``): one user property per field, named like the RabbitMQ headers;
* MQTT 3.1.1 and NATS: an envelope, a JSON object whose first key is ``msgflo_dead_letter``
  (the reason) followed by ``body`` (the original bytes as text, or base64 with ``encoding``).

Every field is cut to a bounded size so that a huge error message or traceback can never make a
header too large for the broker: a dead letter is never refused for the size of its reason.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

Reason = dict[str, str | int]

HEADER_PREFIX = "msgflo-"
RETRY_HEADER = "msgflo-retry"
"""The try a message retried through a RabbitMQ delay queue is at (not part of a reason)."""
RETRY_QUEUE_PREFIX = "retry-"
"""Delay queues of retries: their ``x-death`` entries (``expired``) are no dead-lettering."""
ENVELOPE_KEY = "msgflo_dead_letter"
_ENVELOPE_START = b'{"' + ENVELOPE_KEY.encode() + b'":'

FIELD_LIMIT = 1024
"""Characters kept of one field (the traceback keeps ``TRACEBACK_LIMIT``)."""
TRACEBACK_LIMIT = 4096
TOTAL_LIMIT = 8192
"""Characters of all fields together: far below RabbitMQ's frame size (128 KiB by default)."""
ELLIPSIS = "…"


def bounded(reason: Mapping[str, Any]) -> Reason:
    """The reason with every value a text or a whole number and every text cut to its limit."""
    out: Reason = {}
    left = TOTAL_LIMIT
    for key, value in reason.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            text = value if isinstance(value, str) else str(value)
            limit = min(TRACEBACK_LIMIT if key == "traceback" else FIELD_LIMIT, left)
            if len(text) > limit:
                if limit <= len(ELLIPSIS):
                    continue  # no room left: the field is left out
                text = text[: limit - len(ELLIPSIS)] + ELLIPSIS
            left -= len(text)
            out[str(key)] = text
        else:
            out[str(key)] = value
    return out


def to_headers(reason: Mapping[str, Any]) -> dict[str, str | int]:
    return {HEADER_PREFIX + key: value for key, value in bounded(reason).items()}


def from_headers(headers: Mapping[str, Any] | None) -> Reason | None:
    """Our ``msgflo-*`` headers, else RabbitMQ's newest ``x-death`` entry, else ``None``."""
    if not headers:
        return None
    ours: Reason = {}
    for key, value in headers.items():
        if key.startswith(HEADER_PREFIX) and key != RETRY_HEADER:
            ours[key[len(HEADER_PREFIX) :]] = _plain(value)
    if ours:
        return ours
    deaths = headers.get("x-death")
    if not isinstance(deaths, list):
        return None
    for death in deaths:
        if not isinstance(death, Mapping):
            continue
        if str(_plain(death.get("queue", ""))).startswith(RETRY_QUEUE_PREFIX):
            continue
        reason: Reason = {"reason": _plain(death.get("reason", "rejected")), "source": "x-death"}
        for key in ("queue", "count", "time", "exchange"):
            if death.get(key) is not None:
                reason[key] = _plain(death[key])
        return reason
    return None


NUMBER_FIELDS = frozenset({"attempt", "count"})
"""Fields that are whole numbers: MQTT 5 user properties are text, these are read back."""


def to_properties(reason: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The reason as MQTT 5 user properties: the headers' names, every value as the inside of
    a JSON string, because brokers refuse control characters (a traceback's newlines) in them."""
    return [(key, _escaped(str(value))) for key, value in to_headers(reason).items()]


def _escaped(text: str) -> str:
    valid = text.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
    return orjson.dumps(valid)[1:-1].decode("utf-8")


def from_properties(properties: Sequence[tuple[str, str]]) -> Reason | None:
    """The reason of :func:`to_properties` (other user properties are not part of it)."""
    headers: dict[str, str | int] = {}
    for key, value in properties:
        text = _unescaped(value)
        number = key[len(HEADER_PREFIX) :] in NUMBER_FIELDS and text.isdecimal()
        headers[key] = int(text) if number else text
    return from_headers(headers)


def _unescaped(value: str) -> str:
    """A value of :func:`to_properties`; another publisher's plain text as it is."""
    try:
        text = orjson.loads(b'"' + value.encode("utf-8") + b'"')
    except orjson.JSONDecodeError:
        return value
    return text if isinstance(text, str) else value


def attempt_of(headers: Mapping[str, Any] | None) -> int:
    value = headers.get(RETRY_HEADER) if headers else None
    return value if isinstance(value, int) and value > 1 else 1


def _plain(value: Any) -> str | int:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return str(value)


def wrap(body: bytes, reason: Mapping[str, Any]) -> bytes:
    """The envelope for brokers without headers (MQTT 3.1.1, NATS here)."""
    envelope: dict[str, Any] = {ENVELOPE_KEY: bounded(reason)}
    try:
        envelope["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        envelope["body"] = base64.b64encode(body).decode("ascii")
        envelope["encoding"] = "base64"
    return orjson.dumps(envelope)


def unwrap(body: bytes) -> tuple[bytes, Reason | None]:
    """The original body and the reason of an envelope; anything else comes back unchanged."""
    if not body.startswith(_ENVELOPE_START):
        return body, None
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body, None
    inner, reason = envelope.get("body"), envelope.get(ENVELOPE_KEY)
    if not isinstance(inner, str) or not isinstance(reason, dict):
        return body, None
    if envelope.get("encoding") == "base64":
        return base64.b64decode(inner), reason
    return inner.encode("utf-8"), reason
