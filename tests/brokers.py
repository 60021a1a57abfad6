"""Where the real brokers of the test environment listen (.ci/run starts them)."""

from __future__ import annotations

import socket

import pytest

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"
MOSQUITTO = "mqtt://127.0.0.1:1883"
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
