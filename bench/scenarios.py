"""Which measurements each scenario name runs, and what the brokers say about themselves."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import threading
import time
from typing import Any

import aio_pika
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench import amqp_probe, discovery, graph_parse, lifecycle, relay, schema_cost
from bench.common import MOSQUITTO, RABBITMQ, Limits, Result, summary
from msgflo.graph import parse_fbp

FAN_WORKERS = 4
FAN_IMPLS = ("ours-async", "ours-legacy", "node", "node-prefetch", "bare")


async def run(
    name: str, args: argparse.Namespace, limits: Limits, targets: list[relay.Target]
) -> list[Result]:
    if name == "relay":
        results = []
        lengths = args.chain_lengths[:1] if args.quick else args.chain_lengths
        for target in targets:
            if "harness" in args.impls:
                results.append(await relay.chain(target, "harness", 0, limits))
            for n in lengths:
                for impl in args.impls:
                    if impl == "harness":
                        continue
                    if impl == "ours-async-asyncio" and n != lengths[0]:
                        continue  # the event loop's share shows in one chain length
                    if relay.supported(impl, target) is None:
                        results.append(await relay.chain(target, impl, n, limits))
        return results
    if name in ("fanout", "pool"):
        rabbit = relay.Target("rabbitmq", RABBITMQ)
        return [
            await relay.fan(rabbit, impl, name, FAN_WORKERS, limits)
            for impl in FAN_IMPLS
            if impl in args.impls
        ]
    if name == "startup":
        return await lifecycle.startup(args.quick)
    if name == "discovery":
        return await discovery.discovery(args.quick)
    if name == "footprint":
        return await lifecycle.footprint(args.quick, args.impls)
    if name == "recovery":
        return await lifecycle.recovery(args.quick, args.impls)
    if name == "flood":
        return await lifecycle.flood(args.quick)
    if name == "graph_parse":
        return [parse_time(args.quick)]
    if name == "schema":
        return await schema_cost.schema_cost(limits, 1 if args.quick else 7)
    if name == "amqp_drain":
        return [await amqp_drain(args.quick)]
    raise ValueError(name)


async def amqp_drain(quick: bool) -> Result:
    """Our RabbitMQ relay draining a filled queue (``bench.amqp_probe``): the relay chain's
    closed loop cannot show more than its load generator publishes (the ``harness`` row)."""
    probe = amqp_probe.Probe(RABBITMQ, None, "auto")
    found = await probe.run(5_000 if quick else 20_000, [], 0.0, 1 if quick else 3)
    metrics: dict[str, Any] = {"throughput": summary(found.runs)}
    if found.relay_cpu_us is not None:
        metrics["relay_cpu_us"] = found.relay_cpu_us
    return Result("amqp_drain", "rabbitmq N=1, queue filled first", "ours-async", metrics)


def parse_time(quick: bool) -> Result:
    """The existing ``bench.graph_parse`` scenario, folded into the report."""
    nodes = 500 if quick else 5000
    text = graph_parse.make_graph(nodes)
    parse_fbp("a(A)\n")
    timings = []
    for _ in range(1 if quick else 5):
        start = time.perf_counter()
        parse_fbp(text)
        timings.append(time.perf_counter() - start)
    return Result("graph_parse", f"{nodes} nodes", "ours", {"seconds": summary(timings)})


async def broker_versions() -> dict[str, str]:
    return {
        "rabbitmq": await _rabbitmq_version(),
        "mosquitto": await asyncio.to_thread(_mosquitto_version),
        "amqtt": importlib.metadata.version("amqtt"),
    }


async def _rabbitmq_version() -> str:
    try:
        connection = await aio_pika.connect(RABBITMQ, timeout=5)
    except Exception as exc:
        return f"unreachable ({exc})"
    try:
        props: dict[str, Any] = connection.transport.connection.server_properties  # type: ignore[union-attr]
        return str(props.get("version", "unknown"))
    finally:
        await connection.close()


def _mosquitto_version() -> str:
    """Mosquitto publishes its version as a retained ``$SYS`` message."""
    got: list[str] = []
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2)

    def on_connect(c: paho.Client, *_: Any) -> None:
        c.subscribe("$SYS/broker/version")

    def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        got.append(msg.payload.decode(errors="replace"))
        done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    host, port = MOSQUITTO.rsplit("/", 1)[1].split(":")
    try:
        client.connect(host, int(port))
    except OSError as exc:
        return f"unreachable ({exc})"
    client.loop_start()
    done.wait(3)
    with contextlib.suppress(Exception):
        client.disconnect()
    client.loop_stop()
    return got[0] if got else "unknown"
