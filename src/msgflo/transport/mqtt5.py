"""The MQTT transport's opt-in MQTT 5 mode (``?version=5``): reasons as user properties.

In this mode a dead letter is the original payload, unchanged, with its reason as MQTT 5 user
properties named like the RabbitMQ headers (``msgflo-reason``, ``msgflo-error``...) instead of
the 3.1.1 envelope.  Properties travel beside a body through the client's outbox, its consumer
queues and the binder's forwarding as :class:`WithProperties`, a ``bytes`` that carries them:
every path that moves a body moves them too, and only the links (which write and read packets)
and the places that turn a body into data (:func:`plain`, :func:`message_from`) look at them.

3.1.1 stays the default: Node participants speak it, and a broker drops the user properties
of a message it delivers to a 3.1.1 subscriber (which then gets the bare payload).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from msgflo.transport.base import Address, Message, TransportError, decode
from msgflo.transport.reason import from_properties, to_properties

OPTION = "version"
"""The URL option that picks the protocol: ``?version=5`` or ``?version=3.1.1`` (the default)."""
_VERSIONS = {"5": True, "5.0": True, "3.1.1": False, "4": False}

_UNSUPPORTED_PROTOCOL_VERSION = 0x84
"""CONNACK's answer to a version the broker does not speak (paho reads 3.1.1's 1 as this)."""

_PropertiesOf: Any = Properties
"""paho's property sets are untyped; everything read from them here is checked."""
_packed: Any = Properties.pack

UserProperties = tuple[tuple[str, str], ...]


def wanted(address: Address) -> bool:
    """Whether ``address`` asks for MQTT 5."""
    raw = address.options.get(OPTION, "3.1.1")
    if raw not in _VERSIONS:
        raise TransportError(
            f"{address.redacted()}: {OPTION}={raw!r} is not an MQTT version (5 or 3.1.1)"
        )
    return _VERSIONS[raw]


class WithProperties(bytes):
    """A body and the user properties it is published or was delivered with.

    ``orjson`` takes no ``bytes`` subclass: :func:`plain` gives the bytes to decode.
    """

    user_properties: UserProperties

    def __new__(cls, body: bytes, user_properties: Sequence[tuple[str, str]]) -> WithProperties:
        self = super().__new__(cls, body)
        self.user_properties = tuple(user_properties)
        return self


def plain(body: bytes) -> bytes:
    """The bytes of a body without the properties it may carry."""
    return bytes(body) if isinstance(body, WithProperties) else body


def dead_letter(body: bytes, reason: Mapping[str, Any]) -> bytes:
    """What a v5 client publishes to ``dead-<queue>``: the original bytes, the reason beside."""
    return WithProperties(body, to_properties(reason))


def message_from(queue: str, body: bytes, token: object = None) -> Message:
    """A delivery as a message: a reason from user properties, else from a 3.1.1 envelope
    (a mixed network has both kinds of publishers)."""
    if isinstance(body, WithProperties):
        reason = from_properties(body.user_properties)
        if reason is not None:
            original = bytes(body)
            return Message(queue, original, decode(original), token=token, reason=reason)
    return Message.from_envelope(queue, plain(body), token)


def with_user_properties(body: bytes, properties: Properties | None) -> bytes:
    """A delivered body with the user properties of its PUBLISH, if it has any."""
    pairs = getattr(properties, "UserProperty", None) if properties is not None else None
    return WithProperties(body, pairs) if pairs else body


def publish_properties(body: bytes) -> Properties | None:
    """The PUBLISH properties that carry ``body``'s user properties, or None."""
    if not isinstance(body, WithProperties) or not body.user_properties:
        return None
    properties: Properties = _PropertiesOf(PacketTypes.PUBLISH)
    properties.UserProperty = list(body.user_properties)
    return properties


def packed(body: bytes) -> bytes:
    """The properties block of a v5 PUBLISH (its length first) for ``body``."""
    properties = publish_properties(body)
    block: bytes = b"\x00" if properties is None else _packed(properties)
    return block


def unpacked(block: bytes | bytearray | memoryview, body: bytes) -> bytes:
    """``body`` with the user properties of a v5 PUBLISH's properties ``block``."""
    properties, _ = _PropertiesOf(PacketTypes.PUBLISH).unpack(bytes(block))
    return with_user_properties(body, properties)


def session_properties(clean: bool) -> Properties | None:
    """CONNECT properties: a v5 session ends with its connection unless it is given an expiry;
    a persistent one (3.1.1's clean session off) is kept as long as the broker allows."""
    if clean:
        return None
    properties: Properties = _PropertiesOf(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0xFFFFFFFF
    return properties


def refusal(exc: BaseException) -> str | None:
    """The line for a broker that answered a v5 CONNECT with "unsupported protocol version"."""
    rc = exc.rc if isinstance(exc, aiomqtt.MqttCodeError) else None
    if rc is not None and getattr(rc, "value", rc) == _UNSUPPORTED_PROTOCOL_VERSION:
        return f"the broker does not accept MQTT 5 (remove {OPTION}=5 to speak 3.1.1)"
    return None
