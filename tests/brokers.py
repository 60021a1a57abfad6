"""Where the real brokers of the test environment listen (.ci/run starts them)."""

from __future__ import annotations

import socket
import uuid

import pytest

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"
MOSQUITTO = "mqtt://127.0.0.1:1883"
MOSQUITTO_V5 = "mqtt://127.0.0.1:1883?version=5"
NATS = "nats://127.0.0.1:4222"
NATS_JETSTREAM = "nats://127.0.0.1:4222?jetstream=1"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def require_broker(port: int, name: str) -> None:
    """The brokers are part of the test environment: one that is absent fails the test."""
    if not listening(port):
        pytest.fail(f"{name} does not listen on 127.0.0.1:{port}; start it (see .ci/run)")


def url_for(kind: str, memory_prefix: str = "test") -> str:
    """The URL of a test parameter's broker (``memory``, ``mqtt``, ``mqtt5``, ``amqp``, ``nats``
    or ``nats-js``), failing the test when that broker does not listen; ``memory`` is a fresh
    one."""
    if kind in ("mqtt", "mqtt5"):
        require_broker(1883, "Mosquitto")
        return MOSQUITTO_V5 if kind == "mqtt5" else MOSQUITTO
    if kind == "amqp":
        require_broker(5672, "RabbitMQ")
        return RABBITMQ
    if kind in ("nats", "nats-js"):
        require_broker(4222, "NATS")
        return NATS_JETSTREAM if kind == "nats-js" else NATS
    return f"memory://{memory_prefix}-{uuid.uuid4().hex}"
