"""Coordinator start-up, memory footprint and recovery from a lost broker connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import (
    BIN,
    MOSQUITTO,
    RABBITMQ,
    ProcessFailed,
    Result,
    ensure_node_peers,
    processes,
    rss_mb,
    start_process,
    stop_process,
    unique,
)
from bench.loadgen import delete_amqp
from bench.relay import RELAYS, Target, make_load, relay_command, relay_env
from msgflo.coordinator import Coordinator, CoordinatorOptions
from msgflo.library import Library, LibraryConfig
from msgflo.testing.proxy import FaultProxy
from msgflo.transport import (
    Address,
    Binding,
    Broker,
    Message,
    QueueKind,
    get_broker,
    get_client,
)
from msgflo.wiring import Status

HEARTBEAT_PERIOD = "1.1"
"""MSGFLO_DISCOVERY_PERIOD for participants that were running before the coordinator: they
announce every 0.5 s, so a coordinator that starts later learns of them within half a second
(on MQTT nothing keeps an announcement made before it subscribed)."""


def chain_graph(nodes: int, component: str = "Repeat") -> dict[str, Any]:
    return {
        "processes": {f"n{i}": {"component": component} for i in range(nodes)},
        "connections": [
            {
                "src": {"process": f"n{i}", "port": "out"},
                "tgt": {"process": f"n{i + 1}", "port": "in"},
            }
            for i in range(nodes - 1)
        ],
    }


async def chain_sink(broker: Broker, nodes: int) -> asyncio.Queue[Any]:
    """What the last node of :func:`chain_graph` sends, through a queue of our own."""
    got: asyncio.Queue[Any] = asyncio.Queue()
    name = unique("sink")
    await broker.create_queue(QueueKind.IN, name, persistent=False)
    await broker.add_binding(Binding(f"n{nodes - 1}.OUT", name))

    async def keep(message: Message) -> None:
        got.put_nowait(message.data)
        await broker.ack_message(message)

    await broker.subscribe_to_queue(name, keep)
    return got


async def through_chain(broker: Broker, nodes: int, timeout: float) -> bool:
    """Send one message into the chain's first node; ``True`` once it leaves the last one (the
    proof that every edge is wired: an edge in error also counts as settled)."""
    got = await chain_sink(broker, nodes)
    token = unique("through")
    await broker.send_to(QueueKind.IN, "n0.IN", token)
    try:
        while await asyncio.wait_for(got.get(), timeout) != token:
            pass
    except TimeoutError:
        return False
    return True


async def _wire(url: str, nodes: int, library: Library | None, timeout: float) -> dict[str, Any]:
    """Start a coordinator on ``url``, load a chain of ``nodes``, time until it is wired, and
    prove the wiring with a message through the whole chain."""
    options = CoordinatorOptions(broker_url=url, start_participants=library is not None)
    coordinator = Coordinator(get_broker(url), library, options)
    start = time.perf_counter()
    try:
        await coordinator.start()
        await coordinator.load_graph(chain_graph(nodes))
        done = await coordinator.settled(timeout)
        seconds = time.perf_counter() - start
        pending = len(coordinator.pending_roles())
        errors = sum(p.status is Status.ERROR for p in coordinator.wiring.values())
        through = done and await through_chain(coordinator.broker, nodes, 10.0)
        through_s = time.perf_counter() - start
    finally:
        await coordinator.stop()
    return {
        "seconds": seconds,
        "wired": done and not errors and through,
        "pending": pending,
        "errors": errors,
        "through": through,
        "through_s": through_s if through else None,
    }


async def startup(quick: bool) -> list[Result]:
    results = []
    sizes = (10,) if quick else (10, 50, 200)
    for name, url in (("mosquitto", MOSQUITTO), ("rabbitmq", RABBITMQ)):
        for nodes in sizes:
            host = [sys.executable, str(RELAYS / "host.py"), str(nodes), url]
            env = {"MSGFLO_DISCOVERY_PERIOD": HEARTBEAT_PERIOD}
            async with processes([(host, env)]):
                metrics = await _wire(url, nodes, None, 30)
            results.append(Result("startup", f"running {nodes} {name}", "ours", metrics))
    spawned = (10,) if quick else (10, 50, 200)
    with tempfile.TemporaryDirectory() as tmp:
        command = f"{BIN / 'msgflo-python'} {RELAYS / 'ours_async.py'} #ROLE"
        library = Library(
            LibraryConfig.from_mapping({"components": {"Repeat": command}}), [], Path(tmp)
        )
        for nodes in spawned:
            metrics = await _wire(MOSQUITTO, nodes, library, 20 + nodes * 0.6)
            results.append(Result("startup", f"spawned {nodes} mosquitto", "ours", metrics))
            if not metrics["wired"]:
                break
    return results


async def _idle_rss(argv: Sequence[str], env: dict[str, str]) -> float:
    proc = await start_process(argv, env)
    try:
        await asyncio.sleep(1.0)
        return rss_mb(proc.pid)
    finally:
        await stop_process(proc.process)


async def footprint(quick: bool, chosen: Sequence[str]) -> list[Result]:
    results = []
    impls = [i for i in ("ours-async", "ours-legacy", "node", "bare") if i in chosen]
    for name, url in (("mosquitto", MOSQUITTO), ("rabbitmq", RABBITMQ)):
        target = Target(name, url)
        base = unique("idle")
        for impl in impls:
            if impl == "node" and (why := ensure_node_peers()):
                results.append(Result("footprint", f"idle participant {name}", impl, note=why))
                continue
            argv = relay_command(impl, target, base, f"{base}.in", f"{base}.out")
            try:
                mb = await _idle_rss(argv, relay_env(impl, target, f"{base}.in", f"{base}.out"))
            except ProcessFailed as exc:
                results.append(Result("footprint", f"idle participant {name}", impl, note=str(exc)))
                continue
            results.append(Result("footprint", f"idle participant {name}", impl, {"rss_mb": mb}))
        if target.amqp:
            await delete_amqp(url, [f"{base}.in"], [f"{base}.in", f"{base}.out"])
    nodes = 50 if quick else 200
    results.append(await _coordinator_rss(nodes))
    return results


async def _coordinator_rss(nodes: int) -> Result:
    """``msgflo --graph`` with ``nodes`` already-running participants, once they are wired."""
    variant = f"coordinator {nodes} nodes mosquitto"
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / "chain.json"
        graph.write_text(json.dumps(chain_graph(nodes)))
        host = [sys.executable, str(RELAYS / "host.py"), str(nodes), MOSQUITTO]
        env = {"MSGFLO_DISCOVERY_PERIOD": HEARTBEAT_PERIOD}
        async with processes([(host, env)]):
            argv = [str(BIN / "msgflo"), "--graph", str(graph), "--broker", MOSQUITTO]
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=tmp,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                assert process.stdout is not None
                lines = 0
                deadline = time.perf_counter() + 30
                # one "wired"/"discovered" line per node and edge; the RSS is read once quiet
                while time.perf_counter() < deadline:
                    try:
                        line = await asyncio.wait_for(process.stdout.readline(), 2.0)
                    except TimeoutError:
                        break
                    if not line:
                        break
                    lines += 1
                mb = rss_mb(process.pid)
            finally:
                await stop_process(process)
    return Result("footprint", variant, "ours", {"rss_mb": mb, "lines": lines})


# -- recovery ------------------------------------------------------------------------------


RECOVERY_IMPLS = ("ours-async", "ours-legacy", "node", "bare")


async def recovery(quick: bool, impls: Sequence[str]) -> list[Result]:
    results = []
    for name, url in (("rabbitmq", RABBITMQ), ("mosquitto", MOSQUITTO)):
        for impl in RECOVERY_IMPLS:
            if impl not in impls and not (impl == "node" and "node-prefetch" in impls):
                continue
            results.append(await _recover(Target(name, url), impl, quick))
    if "ours-async" in impls:
        # QoS 1 end to end (source and sink too), at a rate whose backlog during the outage
        # (about three seconds of it) stays within Mosquitto's default max_queued_messages
        # (1000 per offline client), past which the broker itself drops messages.
        qos1 = Target("mosquitto qos1", f"{MOSQUITTO}?qos=1")
        results.append(await _recover(qos1, "ours-async", quick, rate=QOS1_RATE))
    return results


QOS1_RATE = 250.0
"""Messages a second in the QoS 1 recovery row (see :func:`recovery`)."""


async def _recover(target: Target, impl: str, quick: bool, rate: float | None = None) -> Result:
    """Traffic at a steady rate; the relay's broker connection is cut and refused for
    ``down`` seconds; count what arrives, twice, or never."""
    variant = f"cut {target.name}"
    if impl == "node" and (why := ensure_node_peers()):
        return Result("recovery", variant, impl, note=why)
    steady, seconds, cut_at, down = (300.0, 4.0, 1.0, 1.0) if quick else (500.0, 8.0, 2.0, 2.0)
    rate = rate or steady
    address = Address.parse(target.url)
    base = unique("recover")
    inq, outq = f"{base}.in", f"{base}.out"
    proxy = await FaultProxy(address.host, address.port or 1883).start()
    userinfo = f"{address.username}:{address.password}" if address.username else ""
    query = urlsplit(target.url).query
    suffix = (address.path or "") + (f"?{query}" if query else "")
    relayed = Target(target.name, proxy.url(address.scheme, userinfo, suffix))
    env = relay_env(impl, relayed, inq, outq)
    if impl == "node" and target.amqp:
        env["BENCH_PREFETCH"] = "100"
    load = make_load(target.url, inq, outq)
    try:
        await load.open()
        async with processes(
            [(relay_command(impl, relayed, f"{base}-r", inq, outq), env)]
        ) as procs:
            back_at = 0.0

            async def fault() -> None:
                nonlocal back_at
                await asyncio.sleep(cut_at)
                proxy.block()
                await asyncio.sleep(down)
                proxy.unblock()
                back_at = time.perf_counter()

            faults = asyncio.create_task(fault())
            sent = await load.flow(rate, seconds)
            await faults
            await load.drain(sent, 15.0)
            arrivals = [t for t in load.sink.arrivals if t > back_at]
            alive = procs[0].process.returncode is None
    except ProcessFailed as exc:
        return Result("recovery", variant, impl, note=str(exc))
    finally:
        await load.close()
        await proxy.stop()
        if target.amqp:
            with contextlib.suppress(Exception):
                await delete_amqp(target.url, [inq, outq], [inq, outq])
    metrics = {
        "rate_per_s": rate,
        "sent": sent,
        "received": load.sink.received,
        "lost": load.sink.lost(sent),
        "duplicates": load.sink.duplicates,
        "down_seconds": down,
        "resumed_after_s": (min(arrivals) - back_at) if arrivals else None,
        "relay_alive": alive,
    }
    note = "" if arrivals else "no traffic after the broker came back"
    if not alive:
        note = "the relay process exited when the connection dropped"
    return Result("recovery", variant, impl, metrics, note)


FLOOD_DELAY = 0.002
"""Seconds the flooded participant takes per message: a pace of 500 messages a second."""


async def flood(quick: bool) -> list[Result]:
    """A participant (``ours_async.py`` taking :data:`FLOOD_DELAY` per message) whose input
    is flooded by our own client, as fast as it can send, far beyond the participant's pace:
    the peak RSS of the participant, on the fast path and on the libraries' public API."""
    count, size = (20_000, 2048) if quick else (100_000, 2048)
    return [
        await _flood(Target("mosquitto", MOSQUITTO), count, size),
        await _flood(Target("mosquitto-public", f"{MOSQUITTO}?fastpath=0"), count, size),
    ]


async def _flood(target: Target, count: int, size: int) -> Result:
    variant = f"flood {target.name}"
    base = unique("flood")
    inq, outq = f"{base}.in", f"{base}.out"
    env = relay_env("ours-async", target, inq, outq) | {"BENCH_DELAY": str(FLOOD_DELAY)}
    argv = relay_command("ours-async", target, f"{base}-r", inq, outq)
    body = b"x" * size
    try:
        async with processes([(argv, env)]) as procs, get_client(MOSQUITTO) as source:
            pid = procs[0].pid
            await asyncio.sleep(0.5)
            idle = rss_mb(pid)
            peak = idle
            started = time.perf_counter()
            for i in range(count):
                await source.send_raw(QueueKind.IN, inq, body)
                if i % 500 == 0:
                    await asyncio.sleep(0)
                    peak = max(peak, rss_mb(pid))
            await source.flush()
            sent_s = time.perf_counter() - started
            for _ in range(20):  # what is still on its way to the participant
                await asyncio.sleep(0.1)
                peak = max(peak, rss_mb(pid))
            alive = procs[0].process.returncode is None
    except ProcessFailed as exc:
        return Result("flood", variant, "ours-async", note=str(exc))
    metrics = {
        "sent": count,
        "body_bytes": size,
        "sent_mb": round(count * size / 1e6, 1),
        "send_seconds": round(sent_s, 2),
        "participant_pace_per_s": round(1 / FLOOD_DELAY),
        "idle_rss_mb": round(idle, 1),
        "peak_rss_mb": round(peak, 1),
        "participant_alive": alive,
    }
    return Result("flood", variant, "ours-async", metrics, "source: our own client (MqttClient)")
