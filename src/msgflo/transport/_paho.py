"""The MQTT fast path: the only module that touches paho's and aiomqtt's internals.

aiomqtt owns the connection (CONNACK, SUBACK, keepalive).  The per-message paths bypass it and
most of paho, because paho costs about three ``recv`` calls, a callback-matcher pass and a lock
per received message and one ``send`` plus a writer (un)registration per publish, which was
half of a relay's CPU:

- the socket is read in chunks of :data:`READ_SIZE`; QoS 0 PUBLISH packets (MQTT 3.1.1 and 5)
  are cut out of the buffer and handed to their route here, and every other packet (CONNACK,
  SUBACK, PINGRESP, QoS 1/2 publishes...) is fed, whole, to paho, which reads it from the same
  buffer, so paho's state machine still sees everything it needs;
- QoS 0 publishes of one event-loop turn are encoded here and handed to paho's writer as one
  packet: one ``send`` per turn.

In MQTT 5 a PUBLISH has a properties block between its topic and its payload: its length comes
first, and an empty block (the common case) is one zero byte; a non-empty one is read by paho's
:class:`~paho.mqtt.properties.Properties` (:mod:`msgflo.transport.mqtt5`).

:func:`unavailable` checks once, at connect, that the library versions are the tested ones and
that every attribute used here exists; when it finds a difference, the transport runs
:class:`msgflo.transport.mqtt_link.PublicLink` (aiomqtt's public API) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from msgflo.transport import mqtt5
from msgflo.transport._adapter import Range, missing, untested

READ_SIZE = 65536
_PUBLISH_QOS0 = 0x30
TESTED: dict[str, Range] = {"paho-mqtt": ((2, 2), (2, 3)), "aiomqtt": ((2, 5), (2, 6))}
"""Library versions (lowest, first untested) whose internals this module was checked against."""

_SESSION_ATTRIBUTES = ("_client", "_connected", "_disconnected")
_PAHO_ATTRIBUTES = (
    "_sock_recv",
    "_sock_close",
    "_in_packet",
    "_out_packet",
    "_last_bytes_received",
    "_last_msg_out",
)

Deliver = Callable[[str, bytes], None]


def unavailable(session: aiomqtt.Client) -> str | None:
    """Why the fast path cannot run on ``session`` (an unopened aiomqtt client), or None."""
    reason = untested(TESTED)
    if reason is not None:
        return reason
    client = getattr(session, "_client", None)
    lacking = missing(session, _SESSION_ATTRIBUTES) + missing(client, _PAHO_ATTRIBUTES, "paho.")
    if lacking:
        return f"the MQTT libraries lack {', '.join(lacking)}"
    if not isinstance(getattr(client, "_in_packet", None), dict):
        return "paho's packet reader has changed"
    return None


def _with_properties(buf: bytearray, at: int, end: int) -> bytes:
    """The payload of a v5 PUBLISH whose properties block starts at ``at`` (with its user
    properties): the block's length is a variable-length integer like the packet's."""
    size, shift, i = 0, 0, at
    while True:
        byte = buf[i]
        size |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if not byte & 0x80:
            break
    return mqtt5.unpacked(buf[at : i + size], bytes(buf[i + size : end]))


def _remaining_length(size: int) -> bytes:
    """MQTT's variable-length integer."""
    out = bytearray()
    while True:
        size, digit = size >> 7, size & 0x7F
        out.append(digit | 0x80 if size else digit)
        if not size:
            return bytes(out)


class _Sent:
    """A QoS 0 batch handed to paho's writer: published once paho has written it out."""

    __slots__ = ("info",)

    def __init__(self, info: paho.MQTTMessageInfo) -> None:
        self.info = info

    def done(self) -> bool:
        return self.info.is_published()


class FastLink:
    """One aiomqtt session, read and written on the fast path (see the module docstring).

    Construct it before the session connects (it installs paho callbacks), call :meth:`start`
    once the session is up.
    """

    def __init__(self, session: aiomqtt.Client, deliver: Deliver, timeout: float) -> None:
        self.session = session
        self._deliver = deliver
        client: paho.Client = session._client
        self._paho = client
        client.connect_timeout = timeout
        client.on_message = self._on_message
        client.on_disconnect = self._fail_fast(client.on_disconnect)
        client.disable_logger()  # its per-packet debug calls cost more than decoding a message
        # paho builds two objects per publish for this callback; done() polls instead.
        client.on_publish = None
        self._v5 = client.protocol == paho.MQTTv5
        self._pending: list[tuple[str, bytes]] = []
        self._batch_info = paho.MQTTMessageInfo(0)
        self._batch_sent = _Sent(self._batch_info)
        self._write_scheduled = False
        self._topic_headers: dict[str, bytes] = {}
        self._fd = -1
        self._reader: Callable[[], None] | None = None
        self._paused = False

    def _fail_fast(self, on_disconnect: Any) -> Any:
        """aiomqtt ignores a connection that closes before CONNACK and waits for its timeout
        (a broker that is still starting, a proxy that refuses): fail the attempt at once so
        the backoff, not the timeout, decides when to try again."""
        connected = self.session._connected

        def wrapped(*args: Any) -> None:
            if not connected.done():
                connected.set_exception(
                    aiomqtt.MqttError("the connection closed before the broker answered")
                )
            on_disconnect(*args)

        return wrapped

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        properties = getattr(msg, "properties", None)
        self._deliver(msg.topic, mqtt5.with_user_properties(bytes(msg.payload), properties))

    # reading ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Replace aiomqtt's socket reader by one that reads chunks and parses them here.

        paho reads a packet in three or more ``recv`` calls and aiomqtt reads one packet per
        event-loop iteration; one ``recv`` per chunk lets a consumer take a burst in one wake-up.
        paho's own ``recv`` is pointed at our buffer so that it reads the packets we leave to it.
        """
        client, session = self._paho, self.session
        sock = client.socket()
        if sock is None:
            return
        loop = asyncio.get_running_loop()
        buf = bytearray()
        real_recv = client._sock_recv

        def recv(size: int) -> bytes:
            if not buf:  # only when an end of stream or an error is passed on to paho
                return real_recv(size)
            chunk = bytes(buf[:size])
            del buf[:size]
            return chunk

        client._sock_recv = recv  # type: ignore[method-assign,assignment]

        def readable() -> None:
            try:
                if client._in_packet["command"]:  # begun before we took over: paho ends it
                    client.loop_read()
                    if client._in_packet["command"]:
                        return
                while not self._paused:
                    try:
                        chunk = real_recv(READ_SIZE)
                    except BlockingIOError:
                        break
                    except OSError:
                        chunk = b""
                    if not chunk:  # paho meets the same end or error and reports the loss
                        client.loop_read()
                        return
                    buf.extend(chunk)
                    self._take_packets(buf)  # may pause: at most one chunk past the mark
                    pending = getattr(sock, "pending", None)  # TLS keeps decrypted bytes
                    if len(chunk) < READ_SIZE and not (pending and pending()):
                        break
            except Exception as exc:
                if not session._disconnected.done():
                    session._disconnected.set_exception(exc)

        self._fd, self._reader = sock.fileno(), readable
        loop.remove_reader(self._fd)
        loop.add_reader(self._fd, readable)

    def pause_reading(self) -> None:
        """Stop reading the socket: the broker's writes then back up in TCP."""
        if not self._paused and self._reader is not None and self._paho.socket() is not None:
            self._paused = True
            asyncio.get_running_loop().remove_reader(self._fd)

    def resume_reading(self) -> None:
        if self._paused and self._reader is not None and self._paho.socket() is not None:
            self._paused = False
            loop = asyncio.get_running_loop()
            loop.add_reader(self._fd, self._reader)
            loop.call_soon(self._reader)  # bytes may already wait in the socket or TLS buffer
        self._paused = False

    def _take_packets(self, buf: bytearray) -> None:
        """Deliver the QoS 0 publishes at the front of ``buf``; hand anything else to paho."""
        client, v5, deliver = self._paho, self._v5, self._deliver
        pos, end_of_data = 0, len(buf)
        while end_of_data - pos >= 2:
            first = buf[pos]
            length, shift, i, whole = 0, 0, pos + 1, False
            while i < end_of_data and shift < 28:
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    whole = True
                    break
            if not whole and shift < 28:
                break  # the length itself has not all arrived
            end = i + length
            if whole and end > end_of_data:
                break
            if whole and first & 0xF6 == _PUBLISH_QOS0 and length >= 2:
                body_at = i + 2 + ((buf[i] << 8) | buf[i + 1])
                topic = buf[i + 2 : body_at].decode("utf-8", "replace")
                if not v5:
                    deliver(topic, bytes(buf[body_at:end]))
                elif buf[body_at] == 0:  # no properties
                    deliver(topic, bytes(buf[body_at + 1 : end]))
                else:
                    deliver(topic, _with_properties(buf, body_at, end))
                pos = end
                continue
            del buf[:pos]
            client.loop_read()  # reads exactly this packet (or a malformed length) via recv()
            pos, end_of_data = 0, len(buf)
            if client.socket() is None:
                buf.clear()
                return
        del buf[:pos]
        client._last_bytes_received = time.monotonic()

    # writing ----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._paho.is_connected()

    def publish(self, topic: str, body: bytes, qos: int, *, retain: bool = False) -> _Sent | None:
        """Queue a publish in order; None when the connection is not up."""
        client = self._paho
        if not client.is_connected():
            return None
        if qos == 0 and not retain:
            self._pending.append((topic, body))
            if not self._write_scheduled:
                self._write_scheduled = True
                asyncio.get_running_loop().call_soon(self.write_pending)
            return self._batch_sent
        self.write_pending()  # keeps the order of everything sent
        info = client.publish(topic, body, qos, retain, mqtt5.publish_properties(body))
        return _Sent(info) if info.rc == paho.MQTT_ERR_SUCCESS else None

    def write_pending(self) -> None:
        """Hand this turn's QoS 0 publishes to paho's writer as one packet (one ``send``)."""
        self._write_scheduled = False
        pending, client = self._pending, self._paho
        if not pending or not client.is_connected():
            return  # kept for take_unsent()
        self._pending = []
        batch, self._batch_info = self._batch_info, paho.MQTTMessageInfo(0)
        self._batch_sent = _Sent(self._batch_info)
        headers, parts, v5 = self._topic_headers, list[bytes](), self._v5
        for topic, body in pending:
            header = headers.get(topic)
            if header is None:
                encoded = topic.encode()
                empty = b"\x00" if v5 else b""  # v5: the length of no properties
                header = headers[topic] = len(encoded).to_bytes(2, "big") + encoded + empty
            if v5 and isinstance(body, mqtt5.WithProperties):
                header = header[:-1] + mqtt5.packed(body)
            parts += (b"\x30", _remaining_length(len(header) + len(body)), header, body)
        data = b"".join(parts)
        client._out_packet.append(
            {
                "command": paho.PUBLISH,
                "mid": 0,
                "qos": 0,
                "pos": 0,
                "to_process": len(data),
                "packet": data,
                "info": batch,
            }
        )
        client._last_msg_out = time.monotonic()
        client.loop_write()

    def take_unsent(self) -> list[tuple[str, bytes]]:
        """The QoS 0 publishes of a turn that ended after the connection was lost."""
        pending, self._pending = self._pending, []
        return pending

    # the end of a session ---------------------------------------------------------------------

    async def lost(self) -> BaseException | None:
        """Wait until the session drops; its cause, if known."""
        disconnected = self.session._disconnected
        await asyncio.wait([disconnected])
        return None if disconnected.cancelled() else disconnected.exception()

    def abandon(self) -> None:
        """Drop a half-open session without waiting for the broker."""
        with contextlib.suppress(Exception):
            self._paho._sock_close()
        if not self.session._disconnected.done():
            self.session._disconnected.set_result(None)

    async def close(self) -> None:
        session = self.session
        # Queuing DISCONNECT makes paho ask aiomqtt to watch the socket for writing, which
        # aiomqtt sets up a loop turn later; the packet may be written and the socket closed
        # before then, and the late watch fails on the closed descriptor ("Exception in
        # callback" at every stop).  Watching at once, on this thread, keeps the order.
        loop = asyncio.get_running_loop()

        def watch_now(client: paho.Client, _userdata: Any, sock: Any) -> None:
            def write() -> None:
                with contextlib.suppress(Exception):  # closing: nothing to report it to
                    client.loop_write()

            loop.add_writer(sock.fileno(), write)

        self._paho.on_socket_register_write = watch_now
        try:
            await session.__aexit__(None, None, None)
        except aiomqtt.MqttError:
            self.abandon()
        if session._disconnected.done() and not session._disconnected.cancelled():
            session._disconnected.exception()  # retrieved, so asyncio does not warn
