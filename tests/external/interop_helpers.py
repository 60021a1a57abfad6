"""Running our participants next to the Node msgflo ecosystem (msgflo 0.12.3, msgflo-nodejs 0.11.1).

The Node peers are pinned in tests/external/node (``make peers``).  Node component files live in
tests/external/node_components and are copied into the component directory a test writes, so the
library's default ``.js`` handler (``msgflo-nodejs --name #ROLE #FILENAME``) starts them; they find
``msgflo-nodejs`` through ``NODE_PATH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from msgflo.transport import Broker, Message, QueueKind, get_broker
from tests.brokers import MOSQUITTO, require_broker
from tests.integration.amqp_helpers import private_vhost, url
from tests.integration.processes import Output

HERE = Path(__file__).parent
NODE_DIR = HERE / "node"
NODE_MODULES = NODE_DIR / "node_modules"
NODE_BIN = NODE_MODULES / ".bin"
NODE_COMPONENTS = HERE / "node_components"
PY_BIN = Path(sys.executable).parent
WAIT = 20.0

PY_TAG = '''
import msgflo


class PyTag(msgflo.Participant):
    """Adds "python" to the path the data took."""

    component = "PyTag"
    inports = {"in": "object"}
    outports = {"out": "object"}

    async def process(self, port, msg):
        data = dict(msg.data) if isinstance(msg.data, dict) else {"value": msg.data}
        data["path"] = [*data.get("path", []), "python"]
        await self.send("out", data)
'''
"""A modern participant that leaves a trace in the data, so a test sees which languages it passed."""


def require_node() -> None:
    """The Node peers belong to the test environment: missing ones fail, they never skip."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed (see .ci/run)")
    if not (NODE_BIN / "msgflo-nodejs").exists():
        pytest.fail(f"Node peers missing in {NODE_DIR}: run `make peers`")


def node_env() -> dict[str, str]:
    """Environment in which both ecosystems' commands are found: ours first, then Node's."""
    env = {k: v for k, v in os.environ.items() if k not in ("MSGFLO_BROKER", "CLOUDAMQP_URL")}
    env["PATH"] = os.pathsep.join([str(PY_BIN), str(NODE_BIN), env.get("PATH", "")])
    env["NODE_PATH"] = str(NODE_MODULES)
    return env


def use_node_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """For helpers that build their child environment from ``os.environ``."""
    for key, value in node_env().items():
        monkeypatch.setenv(key, value)
    for key in ("MSGFLO_BROKER", "CLOUDAMQP_URL"):
        monkeypatch.delenv(key, raising=False)


def component_dir(root: Path, python: Mapping[str, str], node: tuple[str, ...] = ()) -> Path:
    """``root/participants`` holding Python sources by name and copies of Node components."""
    target = root / "participants"
    target.mkdir(parents=True, exist_ok=True)
    for name, source in python.items():
        (target / f"{name}.py").write_text(source)
    for name in node:
        shutil.copy(NODE_COMPONENTS / f"{name}.js", target / f"{name}.js")
    return target


class LazyVhost:
    """A RabbitMQ vhost of our own, made on first use and shared by one test module: its
    ``fbp`` queue sees only these tests, and rabbitmqctl (about a second a call) runs once."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._url: str | None = None

    def url(self) -> str:
        if self._url is None:
            require_broker(5672, "RabbitMQ")
            self._url = url(self._stack.enter_context(private_vhost()))
        return self._url

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="module")
def vhost() -> Iterator[LazyVhost]:
    lazy = LazyVhost()
    yield lazy
    lazy.close()


@contextlib.contextmanager
def broker_for(kind: str, rabbit: LazyVhost) -> Iterator[str]:
    """Mosquitto, or the module's own RabbitMQ vhost."""
    if kind == "mqtt":
        require_broker(1883, "Mosquitto")
        yield MOSQUITTO
        return
    yield rabbit.url()


class Watcher:
    """The test's own connection: discovery messages, and what arrives on queues it reads."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.discovered: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def watch_discovery(self, role: str) -> None:
        async def keep(message: Message) -> None:
            data = message.data
            payload = data.get("payload") if isinstance(data, dict) else None
            if isinstance(payload, dict) and payload.get("role") == role:
                self.discovered.put_nowait(payload)

        await self.broker.subscribe_participant_change(keep)

    async def read(self, queue: str) -> asyncio.Queue[Any]:
        """Consume inqueue ``queue`` (declared Node's way)."""
        got: asyncio.Queue[Any] = asyncio.Queue()

        async def keep(message: Message) -> None:
            got.put_nowait(message.data)
            await self.broker.ack_message(message)

        await self.broker.create_queue(QueueKind.IN, queue)
        await self.broker.subscribe_to_queue(queue, keep)
        return got

    async def send(self, queue: str, data: Any) -> None:
        await self.broker.send_to(QueueKind.IN, queue, data)


@contextlib.asynccontextmanager
async def watcher(broker_url: str) -> AsyncIterator[Watcher]:
    broker = get_broker(broker_url, connect_timeout=10)
    await broker.connect()
    try:
        yield Watcher(broker)
    finally:
        await broker.disconnect()


async def next_item(queue: asyncio.Queue[Any], timeout: float = WAIT) -> Any:
    return await asyncio.wait_for(queue.get(), timeout)


class Group(Output):
    """A Node command that starts children of its own (the original ``msgflo``/``msgflo-setup``
    leave theirs running when they exit): it runs in a session of its own, and stopping it
    signals that whole process group."""

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
        await asyncio.wait_for(asyncio.gather(*self._readers), 10)


@contextlib.asynccontextmanager
async def group(argv: list[str], cwd: Path, env: Mapping[str, str]) -> AsyncIterator[Group]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    running = Group(process)
    try:
        yield running
    finally:
        await running.stop()


def fed(url: str) -> str:
    """On AMQP our participants put their announcements in the queue ``fbp`` (where the
    original's coordinator and tools read them) only when asked."""
    return f"{url}?fbp_queue=1" if url.startswith("amqp") else url
