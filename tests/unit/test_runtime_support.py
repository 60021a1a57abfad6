"""What every runtime test uses: the fbp-protocol 0.9.8 schemas, a runtime on the memory
transport served over a real aiohttp WebSocket, and a client that validates every message it
receives. Also the check that the reply builder's field table matches the schemas."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer

import msgflo
from msgflo.coordinator import Coordinator, CoordinatorOptions
from msgflo.graph import Graph
from msgflo.library import Library, LibraryConfig
from msgflo.runtime import MAIN_GRAPH, Access, Runtime, RuntimeOptions, make_app
from msgflo.runtime.protocol.messages import OUTPUTS
from msgflo.transport import Client, get_broker, get_client

SCHEMA_DIR = (
    Path(__file__).parents[1] / "external" / "node" / "node_modules" / "fbp-protocol" / "schema"
)
PROTOCOLS = ("shared", "runtime", "graph", "component", "network", "trace")
TIMEOUT = 5.0


@functools.cache
def schemas() -> dict[str, Any]:
    """The six schema files as one document. Their nested string ``id`` keys would re-base
    ``$ref`` resolution, so they are dropped; ``#/shared/...`` refs then resolve in place."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not (k == "id" and isinstance(v, str))}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return {
        name: strip(json.loads((SCHEMA_DIR / "json" / f"{name}.json").read_text()))
        for name in PROTOCOLS
    }


def validate(message: dict[str, Any]) -> None:
    """Raise unless ``message`` is a valid runtime output of fbp-protocol 0.9.8 and carries no
    secret anywhere. ``network:persist`` has no output schema: its payload must be empty."""
    assert not _has_secret(message), message
    protocol, command = message["protocol"], message["command"]
    if (protocol, command) == ("network", "persist"):
        assert message["payload"] == {}
        return
    validator(protocol, command).validate(message)


@functools.cache
def validator(protocol: str, command: str) -> jsonschema.Draft4Validator:
    root = schemas()
    return jsonschema.Draft4Validator({**copy.deepcopy(root[protocol]["output"][command]), **root})


def _has_secret(node: Any) -> bool:
    if isinstance(node, dict):
        return "secret" in node or any(_has_secret(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_secret(v) for v in node)
    return False


def test_reply_table_matches_the_schemas() -> None:
    """Every output message of the schemas is in the builder's table with the same allowed and
    required payload fields, so replies can never carry a field a strict client rejects."""
    root = schemas()

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = root
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    def fields(node: dict[str, Any]) -> tuple[set[str], set[str], bool]:
        node = resolve(node)
        allowed, required = set(node.get("properties") or {}), set(node.get("required") or [])
        is_object = node.get("type", "object") == "object"
        for part in node.get("allOf", []):
            a, r, o = fields(part)
            allowed, required, is_object = allowed | a, required | r, is_object and o
        return allowed, required, is_object

    def payload_schema(node: dict[str, Any]) -> dict[str, Any]:
        node = resolve(node)
        parts = [node, *(resolve(p) for p in node.get("allOf", []))]
        found = [
            p["properties"]["payload"] for p in parts if "payload" in (p.get("properties") or {})
        ]
        assert found, node
        return {"allOf": found}

    checked = 0
    for protocol in PROTOCOLS[1:]:
        for command, schema in root[protocol]["output"].items():
            shape = OUTPUTS[(protocol, command)]
            allowed, required, is_object = fields(payload_schema(schema))
            if not is_object:
                assert shape.fields is None, (protocol, command)
                continue
            allowed.discard("secret")  # outputs that reuse an input schema; never sent
            assert shape.fields == frozenset(allowed), (protocol, command)
            assert shape.required == required, (protocol, command)
            checked += 1
    assert checked == len(OUTPUTS) - 2  # all but componentsready and persist (no schema)


def test_validation_rejects_what_the_original_sent() -> None:
    """The echo with a secret, and ``status`` with ``time``, as msgflo 0.12.3 sent them."""
    with pytest.raises(AssertionError):
        validate(  # the echo
            {
                "protocol": "graph",
                "command": "clear",
                "payload": {"id": "g", "secret": "s3cr3t"},
            }
        )
    with pytest.raises(jsonschema.ValidationError):
        validate(
            {
                "protocol": "network",
                "command": "status",
                "payload": {"graph": "g", "running": True, "time": "now"},
            }
        )


# -- participants ---------------------------------------------------------------------------


class Repeat(msgflo.Participant):
    """Sends on what it gets."""

    component = "core/Repeat"
    icon = "forward"
    inports = {"in": "all"}
    outports = {"out": "all"}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        await self.send("out", msg.data)


class Drop(msgflo.Participant):
    component = "core/Drop"
    inports = {"in": "all"}
    outports: ClassVar[dict[str, str] | None] = {}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        return None


PARTICIPANTS: dict[str, type[msgflo.Participant]] = {"core/Repeat": Repeat, "core/Drop": Drop}


# -- the client -----------------------------------------------------------------------------


class Peer:
    """One WebSocket client; every message it receives is schema-validated first."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, protocol: str, command: str, payload: Any = None, **top: Any) -> None:
        message = {
            "protocol": protocol,
            "command": command,
            "payload": {} if payload is None else payload,
            **top,
        }
        await self.ws.send_str(json.dumps(message))

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def receive(self) -> dict[str, Any]:
        message: dict[str, Any] = await asyncio.wait_for(self.ws.receive_json(), TIMEOUT)
        validate(message)
        self.seen.append(message)
        return message

    async def until(self, protocol: str, command: str) -> dict[str, Any]:
        """The next ``protocol:command``, skipping events in between."""
        while True:
            message = await self.receive()
            if (message["protocol"], message["command"]) == (protocol, command):
                return message

    async def request(
        self, protocol: str, command: str, payload: Any = None, *, reply: str | None = None
    ) -> dict[str, Any]:
        """Send and return the reply (``reply`` names its command when it differs), or the
        error if one comes first."""
        await self.send(protocol, command, payload, requestId=uuid.uuid4().hex)
        expected = reply or command
        while True:
            message = await self.receive()
            if message["command"] == "error" or (
                message["protocol"] == protocol and message["command"] == expected
            ):
                return message

    async def error(self, protocol: str, command: str, payload: Any = None) -> str:
        message = await self.request(protocol, command, payload)
        assert message["command"] == "error", message
        text: str = message["payload"]["message"]
        return text


@dataclass
class Rig:
    """A coordinator on the memory transport, its runtime and a way to open clients."""

    runtime: Runtime
    coordinator: Coordinator
    client: Client
    http: TestClient[Any, Any]
    library: Library
    participants: list[msgflo.Participant] = field(default_factory=list)

    async def connect(self, protocols: tuple[str, ...] = ("noflo",)) -> Peer:
        return Peer(await self.http.ws_connect("/", protocols=protocols))

    async def participant(self, component: str, role: str) -> msgflo.Participant:
        """Run a participant of ``component`` as ``role`` in this process (the memory transport
        cannot reach child processes)."""
        participant = PARTICIPANTS[component](role)
        await participant.start(self.client)
        self.participants.append(participant)
        return participant


def known_library(root: Path) -> Library:
    """``core/Repeat`` and ``core/Drop`` as components known from discovery (listable, typed,
    not startable: tests start them in-process)."""
    (root / "components").mkdir(exist_ok=True)
    library = Library(LibraryConfig(namespace="core"), ["components"], root=root)
    for cls in PARTICIPANTS.values():
        library.update_from_discovery(cls("sample").definition)
    return library


@contextlib.asynccontextmanager
async def open_rig(
    url: str,
    root: Path,
    access: Access | None = None,
    graph: Graph | None = None,
    graph_file: Path | None = None,
    auto_save: bool = False,
    ready_timeout: float = TIMEOUT,
) -> AsyncIterator[Rig]:
    library = known_library(root)
    coordinator = Coordinator(
        get_broker(url),
        library,
        CoordinatorOptions(broker_url=url, discovery_period=60, wait_timeout=30),
    )
    await coordinator.start()
    runtime = Runtime(
        coordinator,
        library,
        RuntimeOptions(
            id="rt-test",
            label="test runtime",
            access=access or Access(),
            graph_file=graph_file,
            auto_save=auto_save,
            ready_timeout=ready_timeout,
        ),
    )
    runtime.add_graph(MAIN_GRAPH, graph or Graph())
    await runtime.start_network(MAIN_GRAPH)
    http: TestClient[Any, Any] = TestClient(TestServer(make_app(runtime)))
    await http.start_server()
    client = get_client(url)
    await client.connect()
    rig = Rig(runtime, coordinator, client, http, library)
    try:
        yield rig
    finally:
        for participant in rig.participants:
            await participant.stop()
        await http.close()
        await runtime.close()
        await coordinator.stop()
        await client.disconnect()


@pytest.fixture
async def rig_factory(prefix: str, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    async with contextlib.AsyncExitStack() as stack:
        count = 0

        async def make(**options: Any) -> Rig:
            nonlocal count
            count += 1
            rig: Rig = await stack.enter_async_context(
                open_rig(f"memory://{prefix}{count}", tmp_path, **options)
            )
            return rig

        yield make


@pytest.fixture
async def rig(rig_factory: Callable[..., Any]) -> Rig:
    made: Rig = await rig_factory()
    return made


@pytest.fixture
async def peer(rig: Rig) -> Peer:
    return await rig.connect()
