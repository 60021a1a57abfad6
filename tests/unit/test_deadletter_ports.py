"""Dead-letter ports as FBP clients and graph files see them, and reasons as they cross the
wire (the transports' shared encoding)."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime

import orjson

import msgflo
import msgflo.testing
from msgflo.graph import parse_fbp
from msgflo.graph.check import check
from msgflo.runtime import MAIN_GRAPH
from msgflo.transport import Binding, BindingType, QueueKind, reason
from tests.unit import test_runtime_support as support
from tests.unit.test_runtime_support import Peer, Rig

peer, rig, rig_factory = support.peer, support.rig, support.rig_factory
G = MAIN_GRAPH


def ref(node: str, port: str) -> dict[str, str]:
    return {"node": node, "port": port}


async def test_addedge_and_removeedge_take_dead_ports_and_wire_them(rig: Rig, peer: Peer) -> None:
    await peer.request("graph", "addnode", {"id": "w", "component": "core/Repeat", "graph": G})
    await peer.request("graph", "addnode", {"id": "r", "component": "core/Repeat", "graph": G})
    edge = {"src": ref("w", "DEAD_IN"), "tgt": ref("r", "in"), "graph": G}
    added = await peer.request("graph", "addedge", edge)
    assert added["payload"]["src"] == ref("w", "DEAD_IN")
    await rig.participant("core/Repeat", "w")
    await rig.participant("core/Repeat", "r")
    assert await rig.coordinator.settled(10)
    [planned] = rig.coordinator.wiring.values()
    assert planned.status.value == "bound"
    assert planned.binding is not None and planned.binding.deadletter == "r.IN"
    await peer.request("graph", "removeedge", edge)
    assert rig.coordinator.edges == []
    refused = await peer.error(
        "graph", "addedge", {"src": ref("w", "dead_nope"), "tgt": ref("r", "in"), "graph": G}
    )
    assert "has no outport 'dead_nope'" in refused


def test_fbp_dead_edge_parses_and_checks() -> None:
    graph = parse_fbp("w(core/Repeat) DEAD_IN -> IN recover(core/Repeat)")
    [edge] = graph.edges
    assert (edge.src.port, edge.tgt.port) == ("dead_in", "in")
    assert [p for p in check(graph) if p.severity == "error"] == []


def test_reason_fields_are_cut_never_refused() -> None:
    cut = reason.bounded(
        {"error": "e" * 5000, "traceback": "t" * 10_000, "attempt": 3, "skip": None, "ok": True}
    )
    assert len(str(cut["error"])) == reason.FIELD_LIMIT and str(cut["error"]).endswith("…")
    assert len(str(cut["traceback"])) == reason.TRACEBACK_LIMIT
    assert cut["attempt"] == 3 and cut["ok"] == "True" and "skip" not in cut
    many = reason.bounded({f"k{i}": "x" * 1000 for i in range(20)})
    assert sum(len(str(v)) for v in many.values()) <= reason.TOTAL_LIMIT


def test_headers_round_trip_and_x_death_reads_as_a_reason() -> None:
    headers = reason.to_headers({"reason": "error", "attempt": 2})
    assert headers == {"msgflo-reason": "error", "msgflo-attempt": 2}
    assert reason.from_headers(headers) == {"reason": "error", "attempt": 2}
    when = datetime(2026, 1, 2, tzinfo=UTC)
    death = {"x-death": [{"reason": b"rejected", "queue": "w.IN", "count": 1, "time": when}]}
    assert reason.from_headers(death) == {
        "reason": "rejected",
        "source": "x-death",
        "queue": "w.IN",
        "count": 1,
        "time": when.isoformat(),
    }
    assert reason.from_headers({"other": 1}) is None


def test_envelope_keeps_the_body_byte_for_byte() -> None:
    for body in (b'{"a": 1}', b"plain text", b"\xff\xfe binary"):
        wrapped = reason.wrap(body, {"reason": "nack"})
        assert next(iter(orjson.loads(wrapped))) == reason.ENVELOPE_KEY
        assert reason.unwrap(wrapped) == (body, {"reason": "nack"})
    assert orjson.loads(reason.wrap(b"\xff", {}))["body"] == base64.b64encode(b"\xff").decode()
    looks_alike = b'{"msgflo_dead_letter": "not a reason", "body": 1}'
    assert reason.unwrap(looks_alike) == (looks_alike, None)
    assert reason.unwrap(b'{"data": 1}') == (b'{"data": 1}', None)


class FailingRepeat(support.Repeat):
    async def process(self, port: str, msg: msgflo.Message) -> None:
        raise ValueError(f"boom {msg.data}")


async def test_a_failed_message_reaches_fbp_clients_as_processerror(rig: Rig, peer: Peer) -> None:
    await peer.request("graph", "addnode", {"id": "w", "component": "core/Repeat", "graph": G})
    failing = FailingRepeat("w")
    await failing.start(rig.client)
    rig.participants.append(failing)
    await rig.client.send_to(QueueKind.IN, "w.IN", 7)
    error = await peer.until("network", "processerror")
    assert error["payload"] == {
        "id": "w",
        "error": "w failed a message on in: ValueError: boom 7",
        "graph": G,
    }


class TooOld(msgflo.Participant):
    inports = {"in": "object"}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        await self.nack(msg, reason={"reason": "too-old", "age": msg.data["age"]})


class LegacyTooOld(msgflo.Participant):
    def __init__(self, role: str) -> None:
        super().__init__({"component": "LegacyTooOld", "inports": [{"id": "in"}]}, role)

    def process(self, inport: str, msg: msgflo.Message) -> None:  # type: ignore[override]
        self.nack(msg, reason=f"age {msg.data['age']}")


async def test_explicit_nack_reasons_modern_and_legacy(prefix: str) -> None:
    url = f"memory://{prefix}"
    broker = msgflo.transport.get_broker(url)
    await broker.connect()
    got: asyncio.Queue[msgflo.Message] = asyncio.Queue()

    async def keep(message: msgflo.Message) -> None:
        got.put_nowait(message)
        await broker.ack_message(message)

    await broker.create_queue(QueueKind.IN, "recover")
    await broker.subscribe_to_queue("recover", keep)
    reasons = []
    for cls, role in ((TooOld, "modern"), (LegacyTooOld, "legacy")):
        queue = f"{role}.IN" if cls is TooOld else f"{role}/in"
        await broker.add_binding(Binding("", queue, BindingType.ROUNDROBIN, "recover"))
        async with msgflo.testing.participant(cls, role, broker=url) as p:
            await p.send("in", {"age": 3})
            message = await asyncio.wait_for(got.get(), 5)
            assert message.data == {"age": 3}
            reasons.append(message.reason)
    await broker.disconnect()
    modern, legacy = reasons
    assert modern is not None and legacy is not None
    assert (modern["reason"], modern["age"], modern["role"], modern["queue"]) == (
        "too-old",
        3,
        "modern",
        "modern.IN",
    )
    assert (legacy["reason"], legacy["error"], legacy["inport"]) == ("nack", "age 3", "in")


async def test_figures_count_each_failed_try_and_the_dead_letter() -> None:
    class Twice(msgflo.Participant):
        inports = {"in": {"retry": {"attempts": 2, "backoff": 0.01}}}

        async def process(self, port: str, msg: msgflo.Message) -> None:
            raise ValueError("no")

    async with msgflo.testing.participant(Twice, "twice") as p:
        await p.send("in", 1)
        assert await p.receive_dead("in") == 1
        figures = p.participant.figures
        assert figures is not None
        assert (figures.errors, figures.nacks) == (2, 1)
