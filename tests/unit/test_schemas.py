"""JSON Schemas on ports: inline, from a file, from a URL fetched once with its $refs; invalid
input dead-lettered with reason ``schema`` and the failing path; outgoing checks in tests;
schemas in discovery and FBP port info; bad schemas stop the start in one line."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

import msgflo
import msgflo.testing
from msgflo import deadletter
from msgflo.library import Component, Library, LibraryConfig
from msgflo.runtime.components import component_payload
from msgflo.schemas import SchemaError
from msgflo.transport import Message

ORDER = {
    "type": "object",
    "required": ["id", "items"],
    "properties": {
        "id": {"type": "integer"},
        "items": {"type": "array", "items": {"type": "string"}},
    },
}


class Orders(msgflo.Participant):
    component = "test/Orders"
    inports = {"in": {"type": "object", "schema": ORDER}}
    outports = {"out": {"type": "object", "schema": {"type": "object", "required": ["total"]}}}

    async def process(self, port: str, msg: Message) -> None:
        await self.send("out", {"total": len(msg.data["items"])} if msg.data["id"] else {})


def with_schema(spec: Any) -> type[msgflo.Participant]:
    class Checked(msgflo.Participant):
        component = "test/Checked"
        inports = {"in": {"type": "object", "schema": spec}}
        outports = {"out": "object"}

        async def process(self, port: str, msg: Message) -> None:
            await self.send("out", msg.data)

    return Checked


async def test_invalid_input_is_dead_lettered_with_reason_schema_and_path() -> None:
    async with msgflo.testing.participant(Orders, "orders") as p:
        await p.send("in", {"id": 1, "items": ["a", "b"]})
        assert await p.receive("out") == {"total": 2}
        await p.send("in", {"id": 2, "items": ["a", 3]})
        assert await p.receive_dead("in") == {"id": 2, "items": ["a", 3]}
        assert p.nacked["in"] == [{"id": 2, "items": ["a", 3]}]
        [dead_port] = deadletter.ports_of(p.participant.definition)
    assert dead_port["schema"] == ORDER, "the dead port carries the inport's schema"


async def test_the_reason_names_the_failing_path() -> None:
    async with msgflo.testing.participant(Orders, "orders") as p:
        got: asyncio.Queue[Message] = asyncio.Queue()

        async def keep(message: Message) -> None:
            got.put_nowait(message)
            await p.client.ack_message(message)

        await p.client.create_queue(msgflo.transport.QueueKind.IN, "recover")
        await p.client.add_binding(
            msgflo.transport.Binding(
                "", "orders.IN", msgflo.transport.BindingType.ROUNDROBIN, "recover"
            )
        )
        await p.client.subscribe_to_queue("recover", keep)
        await p.send("in", {"id": 2, "items": ["a", 3]})
        message = await asyncio.wait_for(got.get(), 5)
    assert message.reason is not None
    assert message.reason["reason"] == "schema"
    assert message.reason["path"] == "$.items[1]"
    assert message.reason["error"] == '$.items[1]: 3 is not of type "string"'


async def test_outgoing_data_is_checked_in_tests() -> None:
    async with msgflo.testing.participant(Orders, "orders") as p:
        await p.send("in", {"id": 0, "items": []})  # process sends {} where total is required
        assert await p.receive_dead("in") == {"id": 0, "items": []}
        assert p.pending("out") == 0


async def test_file_schema_with_relative_ref(tmp_path: Path) -> None:
    (tmp_path / "item.json").write_text('{"type": "string", "maxLength": 3}')
    (tmp_path / "order.json").write_text(
        '{"type": "object", "properties": {"items": {"type": "array", "items": '
        '{"$ref": "item.json"}}}}'
    )
    async with msgflo.testing.participant(with_schema(str(tmp_path / "order.json")), "f") as p:
        await p.send("in", {"items": ["abc"]})
        assert await p.receive("out") == {"items": ["abc"]}
        await p.send("in", {"items": ["abcd"]})
        assert await p.receive_dead("in") == {"items": ["abcd"]}
        announced = p.participant.inport("in")["schema"]
    assert announced["properties"]["items"]["items"] == {"$ref": "item.json"}
    assert announced["$id"] == (tmp_path / "order.json").as_uri()


@contextlib.asynccontextmanager
async def serving(files: dict[str, str]) -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP server of schema documents; yields its URL and the paths asked for."""
    asked: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        asked.append(request.path)
        body = files.get(request.path.lstrip("/"))
        if body is None:
            return web.Response(status=404)
        return web.Response(text=body, content_type="application/schema+json")

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}", asked
    finally:
        await runner.cleanup()


async def test_url_schema_and_its_refs_are_fetched_once_at_start() -> None:
    files = {
        "order.json": '{"type": "object", "properties": {"id": {"$ref": "id.json"}}}',
        "id.json": '{"type": "integer", "minimum": 1}',
    }
    async with serving(files) as (base, asked):
        url = f"{base}/order.json"
        async with msgflo.testing.participant(with_schema(url), "u") as p:
            for good in range(1, 4):
                await p.send("in", {"id": good})
                assert await p.receive("out") == {"id": good}
            await p.send("in", {"id": 0})
            assert await p.receive_dead("in") == {"id": 0}
            assert p.participant.inport("in")["schema"] == url, "discovery carries the URL"
    assert sorted(asked) == ["/id.json", "/order.json"]


@pytest.mark.parametrize(
    ("spec", "cause"),
    [
        ({"type": "no-such-type"}, "does not compile"),
        ("/nonexistent/schema.json", "cannot be read"),
        ("http://127.0.0.1:9/schema.json", "cannot be read"),
    ],
    ids=["not-compiling", "missing-file", "unreachable-url"],
)
async def test_bad_schema_refuses_the_start_in_one_line(spec: Any, cause: str) -> None:
    participant = with_schema(spec)("bad")
    client = msgflo.transport.get_client("memory://bad-schema")
    await client.connect()
    with pytest.raises(SchemaError) as raised:
        await participant.start(client)
    await client.disconnect()
    message = str(raised.value)
    assert message.startswith("bad: inport 'in': schema ") and cause in message
    assert "\n" not in message


async def test_msgflo_python_exits_1_with_the_line(tmp_path: Path) -> None:
    source = tmp_path / "Bad.py"
    source.write_text(
        "import msgflo\n\n\nclass Bad(msgflo.Participant):\n"
        "    inports = {'in': {'type': 'object', 'schema': {'type': 'nope'}}}\n\n"
        "    async def process(self, port, msg):\n        pass\n"
    )
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "msgflo-python"),
        str(source),
        "bad",
        "--broker",
        "memory://cli",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("msgflo-python: bad: inport 'in': schema")


def test_fbp_port_info_links_the_schema(tmp_path: Path) -> None:
    library = Library(LibraryConfig(namespace="test"), [], root=tmp_path)
    definition = {
        "inports": [{"id": "in", "type": "object", "schema": ORDER}],
        "outports": [{"id": "out", "type": "object", "schema": "https://example.net/o.json"}],
    }
    payload = component_payload(Component("test/Orders", definition=definition), library)
    [inport] = payload["inPorts"]
    prefix = "data:application/schema+json,"
    assert inport["schema"].startswith(prefix)
    assert orjson.loads(urllib.parse.unquote(inport["schema"][len(prefix) :])) == ORDER
    out, dead = payload["outPorts"]
    assert out["schema"] == "https://example.net/o.json"
    assert dead["id"] == "dead_in" and dead["schema"] == inport["schema"]
