"""Discovery and wiring at start: how soon a coordinator knows a network that already runs.

- ``running 200``: 200 participants (default heartbeat period) run before the coordinator; time
  from its start until the 199-edge chain is wired, and until a message has passed the chain.
- ``foreign 40``: a running coordinator whose graph has 40 foreign nodes and 20 edges between
  them; ``msgflo-register`` announces all 40; time from the first announcement seen until the
  20 edges are wired, proven by one message over each edge.
- ``answers 1000``: 1,000 participants run before the coordinator; every one must answer its
  discovery request (none missed) and the time until the last answer.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BIN, MOSQUITTO, RABBITMQ, Result, processes
from bench.lifecycle import chain_graph, through_chain
from bench.relay import RELAYS
from msgflo.coordinator import Coordinator, CoordinatorOptions, Event, EventKind
from msgflo.transport import Message, QueueKind, get_broker

TARGETS = {"running": 2.0, "foreign": 1.0}
WAIT = 60.0


def _host(count: int, url: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "MSGFLO_DISCOVERY_PERIOD"}
    return [sys.executable, str(RELAYS / "host.py"), str(count), url], env


async def running(name: str, url: str, nodes: int) -> Result:
    async with processes([_host(nodes, url)]):
        await asyncio.sleep(1.0)  # the participants' own start-up announcements are long past
        coordinator = Coordinator(
            get_broker(url), options=CoordinatorOptions(broker_url=url, start_participants=False)
        )
        start = time.perf_counter()
        await coordinator.start()
        try:
            await coordinator.load_graph(chain_graph(nodes))
            wired = await coordinator.settled(WAIT)
            wired_s = time.perf_counter() - start
            arrived = await through_chain(coordinator.broker, nodes, WAIT)
            through_s = time.perf_counter() - start
        finally:
            await coordinator.stop()
    met = wired and arrived and wired_s < TARGETS["running"]
    metrics = {"wired_s": wired_s, "message_through_s": through_s, "through": arrived}
    return Result("discovery", f"running {nodes} {name}", "ours", {**metrics, "target_met": met})


def _declarations(folder: Path, pairs: int) -> list[str]:
    args = []
    for i in range(2 * pairs):
        path = folder / f"f{i}.yml"
        path.write_text(
            "component: bench/Foreign\n"
            f"inports:\n  in:\n    queue: {folder.name}.f{i}.in\n"
            f"outports:\n  out:\n    queue: {folder.name}.f{i}.out\n"
        )
        args += ["--role", f"f{i}:{path}"]
    return args


async def foreign(name: str, url: str, pairs: int) -> Result:
    graph = {
        "processes": {f"f{i}": {"component": "bench/Foreign"} for i in range(2 * pairs)},
        "connections": [
            {
                "src": {"process": f"f{2 * i}", "port": "out"},
                "tgt": {"process": f"f{2 * i + 1}", "port": "in"},
            }
            for i in range(pairs)
        ],
    }
    coordinator = Coordinator(
        get_broker(url), options=CoordinatorOptions(broker_url=url, start_participants=False)
    )
    first: list[float] = []

    def note(event: Event) -> None:
        if event.kind is EventKind.PARTICIPANT_ADDED and not first:
            first.append(time.perf_counter())

    coordinator.add_listener(note)
    await coordinator.start()
    with tempfile.TemporaryDirectory(prefix="bench-foreign-") as tmp:
        folder = Path(tmp)
        register = [str(BIN / "msgflo-register"), "--broker", url, *_declarations(folder, pairs)]
        try:
            await coordinator.load_graph(graph)
            # The foreign programs run before they are announced: their queues exist.
            sinks = []
            for i in range(pairs):
                inport = f"{folder.name}.f{2 * i + 1}.in"
                await coordinator.broker.create_queue(QueueKind.IN, inport, persistent=False)
                got: asyncio.Queue[Any] = asyncio.Queue()

                async def keep(message: Message, got: asyncio.Queue[Any] = got) -> None:
                    got.put_nowait(message.data)
                    await coordinator.broker.ack_message(message)

                await coordinator.broker.subscribe_to_queue(inport, keep)
                sinks.append(got)
                await coordinator.broker.create_queue(
                    QueueKind.OUT, f"{folder.name}.f{2 * i}.out", persistent=False
                )
            async with processes([(register, {})]):
                wired = await coordinator.settled(WAIT)
                wired_s = time.perf_counter() - first[0] if first else float("nan")
                for i in range(pairs):
                    await coordinator.broker.send_to(
                        QueueKind.OUT, f"{folder.name}.f{2 * i}.out", i
                    )
                through = 0
                for i, got in enumerate(sinks):
                    through += await asyncio.wait_for(got.get(), WAIT) == i
        finally:
            await coordinator.stop()
    met = wired and through == pairs and wired_s < TARGETS["foreign"]
    metrics = {"wired_s": wired_s, "edges_through": through, "target_met": met}
    return Result("discovery", f"foreign {2 * pairs} nodes {pairs} edges {name}", "ours", metrics)


async def answers(name: str, url: str, count: int) -> Result:
    async with processes([_host(count, url)]):
        await asyncio.sleep(1.0)
        coordinator = Coordinator(
            get_broker(url), options=CoordinatorOptions(broker_url=url, start_participants=False)
        )
        graph = {"processes": {f"n{i}": {"component": "Repeat"} for i in range(count)}}
        start = time.perf_counter()
        await coordinator.start()
        try:
            await coordinator.load_graph({**graph, "connections": []})
            for _ in range(int(WAIT / 0.05)):
                if not coordinator.pending_roles():
                    break
                await asyncio.sleep(0.05)
            seconds = time.perf_counter() - start
            missed = len(coordinator.pending_roles())
        finally:
            await coordinator.stop()
    metrics = {"all_known_s": seconds, "missed": missed, "target_met": missed == 0}
    return Result("discovery", f"answers {count} {name}", "ours", metrics)


async def discovery(quick: bool) -> list[Result]:
    results = []
    brokers = (("mosquitto", MOSQUITTO), ("rabbitmq", RABBITMQ))
    for name, url in brokers:
        results.append(await running(name, url, 20 if quick else 200))
    for name, url in brokers:
        results.append(await foreign(name, url, 5 if quick else 20))
    for name, url in brokers:
        results.append(await answers(name, url, 100 if quick else 1000))
    return results
