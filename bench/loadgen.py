"""The neutral load generator and sink: plain paho-mqtt / aio-pika / nats-py clients, none of msgflo's code
(except on ``memory://``, which exists only inside msgflo).

Every message is ``{"run": R, "seq": n, "t0": perf_counter_ns, "body": "..."}`` of about 100
bytes.  All processes share one host, so ``perf_counter_ns`` (CLOCK_MONOTONIC) is one clock and a
latency is ``t_sink - t0``.  The sink counts distinct sequence numbers of the current run, so
late copies of an earlier run, losses and duplicates are all told apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import nats
import orjson
import paho.mqtt.client as paho
import pika
from paho.mqtt.enums import CallbackAPIVersion

PAD = "x" * 48
STALL_SECONDS = 1.5
"""A closed loop that sees nothing arrive for this long has lost its window: the run ends."""


def payload(run: int, seq: int) -> bytes:
    return b'{"run":%d,"seq":%d,"t0":%d,"body":"%s"}' % (
        run,
        seq,
        time.perf_counter_ns(),
        PAD.encode(),
    )


@dataclass
class Sink:
    """Counts what arrives for the current run.  ``copies`` is how many deliveries one sent
    message should cause (fan-out); ``latencies`` are kept only while ``recording``."""

    copies: int = 1
    run: int = 0
    seen: bytearray = field(default_factory=bytearray)
    received: int = 0
    duplicates: int = 0
    recording: bool = False
    latencies: list[int] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    last_arrival: float = 0.0
    first_arrival: float = 0.0
    room: asyncio.Event | None = None

    def begin(self, run: int, expected: int, *, recording: bool = False) -> None:
        self.run = run
        self.seen = bytearray(expected)
        self.received = 0
        self.duplicates = 0
        self.recording = recording
        self.latencies = []
        self.arrivals = []
        self.first_arrival = self.last_arrival = 0.0

    def take(self, body: bytes) -> None:
        now = time.perf_counter_ns()
        try:
            data: dict[str, Any] = orjson.loads(body)
            run, seq = data["run"], data["seq"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if run != self.run or not 0 <= seq < len(self.seen):
            return
        if self.seen[seq] >= self.copies:
            self.duplicates += 1
            return
        self.seen[seq] += 1
        self.received += 1
        self.last_arrival = time.perf_counter()
        if self.received == 1:
            self.first_arrival = self.last_arrival
        if self.recording:
            self.latencies.append(now - data["t0"])
            self.arrivals.append(self.last_arrival)
        if self.room is not None:
            self.room.set()

    def lost(self, sent: int) -> int:
        return sent * self.copies - self.received


@dataclass
class Saturation:
    sent: int
    received: int
    seconds: float
    lost: int
    duplicates: int

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


class Load(ABC):
    """Source and sink around the system under test, driven from the bench's event loop."""

    window = 500

    def __init__(self, copies: int = 1) -> None:
        self.sink = Sink(copies=copies)
        self._run = 0

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def publish(self, body: bytes) -> None: ...

    async def wait_for_room(self) -> None:
        """Return when the sink has taken something (or soon, when it cannot say so)."""
        room = self.sink.room
        if room is None:
            await asyncio.sleep(0.0002)
            return
        room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(room.wait(), 0.05)

    def _next_run(self, expected: int, *, recording: bool = False) -> int:
        self._run += 1
        self.sink.begin(self._run, expected, recording=recording)
        return self._run

    async def drain(self, sent: int, seconds: float) -> None:
        """Wait until everything sent arrived, or nothing arrived for a while, or time is up."""
        deadline = time.perf_counter() + seconds
        while self.sink.received < sent * self.sink.copies and time.perf_counter() < deadline:
            last = self.sink.last_arrival or time.perf_counter()
            if time.perf_counter() - last > STALL_SECONDS:
                break
            await self.wait_for_room()

    async def saturate(self, messages: int, seconds: float) -> Saturation:
        """Closed loop: keep ``window`` messages in flight; the rate is what the sink sees."""
        run = self._next_run(messages)
        sink = self.sink
        window = self.window * sink.copies
        start = time.perf_counter()
        deadline = start + seconds
        sent = 0
        stalled_since = 0.0
        while sent < messages:
            now = time.perf_counter()
            if now > deadline:
                break
            if sent * sink.copies - sink.received >= window:
                progress = sink.received
                await self.wait_for_room()
                if sink.received == progress:
                    stalled_since = stalled_since or now
                    if now - stalled_since > STALL_SECONDS:
                        break
                else:
                    stalled_since = 0.0
                continue
            await self.publish(payload(run, sent))
            sent += 1
        end_of_sending = time.perf_counter()
        await self.drain(sent, max(0.5, deadline - end_of_sending) + 1.0)
        finished = sink.last_arrival or end_of_sending
        return Saturation(
            sent=sent,
            received=sink.received,
            seconds=max(finished - start, 1e-9),
            lost=sink.lost(sent),
            duplicates=sink.duplicates,
        )

    async def open_loop(self, rate: float, messages: int, seconds: float) -> tuple[int, list[int]]:
        """Send at ``rate`` msg/s (in 1 ms ticks) and return (sent, latencies in ns)."""
        run = self._next_run(messages, recording=True)
        start = time.perf_counter()
        sent = 0
        tick = 0.001
        while sent < messages and time.perf_counter() - start < seconds:
            due = min(messages, int((time.perf_counter() - start) * rate) + 1)
            while sent < due:
                await self.publish(payload(run, sent))
                sent += 1
            await asyncio.sleep(tick)
        await self.drain(sent, 3.0)
        return sent, list(self.sink.latencies)

    async def flow(self, rate: float, seconds: float) -> int:
        """Open loop for recovery runs (arrival times recorded); returns how many were sent."""
        run = self._next_run(int(rate * seconds) + 1, recording=True)
        start = time.perf_counter()
        sent = 0
        total = len(self.sink.seen)
        while sent < total and time.perf_counter() - start < seconds:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            while sent < due:
                await self.publish(payload(run, sent))
                sent += 1
            await asyncio.sleep(0.002)
        return sent


class MqttLoad(Load):
    """paho-mqtt clients: the sink's network loop runs on paho's own thread."""

    def __init__(
        self, host: str, port: int, source: str, sink: str, copies: int = 1, *, qos: int = 0
    ) -> None:
        super().__init__(copies)
        self.host, self.port, self.qos = host, port, qos
        self.source_topic, self.sink_topic = source, sink
        self._pub = paho.Client(CallbackAPIVersion.VERSION2)
        self._sub = paho.Client(CallbackAPIVersion.VERSION2)

    async def open(self) -> None:
        subscribed = threading.Event()

        def on_connect(c: paho.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
            c.subscribe(self.sink_topic, self.qos)

        def on_subscribe(_c: paho.Client, _u: Any, _m: Any, _rc: Any, _p: Any) -> None:
            subscribed.set()

        def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            self.sink.take(bytes(msg.payload))

        self._sub.on_connect = on_connect
        self._sub.on_subscribe = on_subscribe
        self._sub.on_message = on_message
        self._sub.connect(self.host, self.port)
        self._sub.loop_start()
        self._pub.connect(self.host, self.port)
        self._pub.loop_start()
        if not await asyncio.to_thread(subscribed.wait, 10):
            raise RuntimeError(f"mqtt://{self.host}:{self.port}: sink not subscribed")

    async def close(self) -> None:
        for client in (self._pub, self._sub):
            client.disconnect()
            client.loop_stop()

    async def publish(self, body: bytes) -> None:
        self._pub.publish(self.source_topic, body, self.qos)


class NatsLoad(Load):
    """nats-py on core NATS at both ends: the source publishes without waiting for JetStream
    (a stream that captures the subject stores it all the same), the sink subscribes to the
    last subject, which sees messages published there with or without JetStream."""

    def __init__(self, url: str, source: str, sink: str, copies: int = 1) -> None:
        super().__init__(copies)
        self.url, self.source_subject, self.sink_subject = url.split("?")[0], source, sink
        self._nc: Any = None

    async def open(self) -> None:
        self.sink.room = asyncio.Event()
        self._nc = await nats.connect(self.url)

        async def take(msg: Any) -> None:
            self.sink.take(msg.data)

        await self._nc.subscribe(self.sink_subject, cb=take)
        await self._nc.flush()

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()

    async def publish(self, body: bytes) -> None:
        await self._nc.publish(self.source_subject, body)


class AmqpLoad(Load):
    """pika (blocking) clients, the fastest plain Python AMQP client measured here: the source
    publishes to the fanout exchange ``source`` without confirms (the source is not under test);
    the sink consumes queue ``sink`` with automatic acks on a thread of its own."""

    window = 1000

    def __init__(self, url: str, source: str, sink: str, copies: int = 1) -> None:
        super().__init__(copies)
        self.params = pika.URLParameters(url)
        self.params.heartbeat = 0
        self.source_name, self.sink_name = source, sink
        self._pub: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._sub: pika.BlockingConnection | None = None
        self._sink_channel: Any = None
        self._thread: threading.Thread | None = None

    async def open(self) -> None:
        self._pub = pika.BlockingConnection(self.params)
        self._channel = self._pub.channel()
        self._channel.exchange_declare(self.source_name, "fanout", durable=True)
        self._sub = pika.BlockingConnection(self.params)
        channel = self._sink_channel = self._sub.channel()
        channel.exchange_declare(self.sink_name, "fanout", durable=True)
        channel.queue_declare(
            self.sink_name,
            durable=True,
            arguments={"x-dead-letter-exchange": f"dead-{self.sink_name}"},
        )
        channel.queue_bind(self.sink_name, self.sink_name)

        def take(_ch: Any, _method: Any, _props: Any, body: bytes) -> None:
            self.sink.take(body)

        channel.basic_consume(self.sink_name, take, auto_ack=True)
        self._thread = threading.Thread(target=channel.start_consuming, daemon=True)
        self._thread.start()

    async def close(self) -> None:
        if self._sub is not None and self._thread is not None:
            self._sub.add_callback_threadsafe(self._sink_channel.stop_consuming)
            await asyncio.to_thread(self._thread.join, 5)
        for connection in (self._pub, self._sub):
            if connection is not None and connection.is_open:
                with contextlib.suppress(Exception):
                    connection.close()

    async def publish(self, body: bytes) -> None:
        self._channel.basic_publish(self.source_name, "", body)


async def delete_amqp(url: str, queues: list[str], exchanges: list[str]) -> None:
    """Remove what a scenario declared on the shared RabbitMQ."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(name, if_unused=False, if_empty=False)
        for name in exchanges:
            await channel.exchange_delete(name)
    finally:
        await connection.close()
