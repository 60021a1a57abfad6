"""Broker transports behind one interface, chosen by the URL scheme.

Implementations register themselves here by scheme; importing them lazily keeps a participant
that speaks MQTT from loading the AMQP stack (and the other way round).
"""

from __future__ import annotations

import importlib
import os

from msgflo.transport.base import (
    DISCOVERY_QUEUE,
    Address,
    Binding,
    BindingType,
    Broker,
    Client,
    Message,
    MessageHandler,
    QueueDepth,
    QueueKind,
    TransportError,
    decode,
    encode,
)

__all__ = [
    "DISCOVERY_QUEUE",
    "Address",
    "Binding",
    "BindingType",
    "Broker",
    "Client",
    "Message",
    "MessageHandler",
    "QueueDepth",
    "QueueKind",
    "TransportError",
    "broker_url_from_env",
    "decode",
    "encode",
    "get_broker",
    "get_client",
    "known_schemes",
]

# scheme -> "module:ClientClass:BrokerClass"
_REGISTRY: dict[str, str] = {
    "memory": "msgflo.transport.memory:MemoryClient:MemoryBroker",
    "mqtt": "msgflo.transport.mqtt:MqttClient:MqttBroker",
    "mqtts": "msgflo.transport.mqtt:MqttClient:MqttBroker",
    "amqp": "msgflo.transport.amqp:AmqpClient:AmqpBroker",
    "amqps": "msgflo.transport.amqp:AmqpClient:AmqpBroker",
    "nats": "msgflo.transport.nats:NatsClient:NatsBroker",
    "tls": "msgflo.transport.nats:NatsClient:NatsBroker",
}


def register(scheme: str, target: str) -> None:
    """Plug in a transport: ``target`` is ``"package.module:ClientClass:BrokerClass"``."""
    _REGISTRY[scheme.lower()] = target


def known_schemes() -> list[str]:
    return sorted(_REGISTRY)


def _classes(url: str) -> tuple[Address, type[Client], type[Broker]]:
    address = Address.parse(url)
    target = _REGISTRY.get(address.scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in known_schemes())
        raise TransportError(
            f"unsupported broker scheme {address.scheme!r} in {url!r}; known: {known}"
        )
    module_name, client_name, broker_name = target.split(":")
    module = importlib.import_module(module_name)
    return address, getattr(module, client_name), getattr(module, broker_name)


def get_client(url: str, *, connect_timeout: float = 30.0) -> Client:
    address, client_cls, _ = _classes(url)
    return client_cls(address, connect_timeout=connect_timeout)


def get_broker(url: str, *, connect_timeout: float = 30.0) -> Broker:
    address, _, broker_cls = _classes(url)
    return broker_cls(address, connect_timeout=connect_timeout)


def broker_url_from_env(explicit: str | None = None, default: str | None = None) -> str | None:
    """The broker URL by the original's precedence: option, ``MSGFLO_BROKER``, ``CLOUDAMQP_URL``."""
    return explicit or os.environ.get("MSGFLO_BROKER") or os.environ.get("CLOUDAMQP_URL") or default
