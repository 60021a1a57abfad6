"""msgflo-monitor's parts that need no broker: durations, the systemd notify socket, the
status line, the terminal table of a network snapshot, and the bindings comparison."""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import pytest
from rich.console import Console

from msgflo.observe.bindings import Kind, compare, expected
from msgflo.observe.monitor import StatusLine, parse_duration
from msgflo.observe.systemd import Notifier
from msgflo.observe.terminal import SnapshotError, from_listing, http_base, render
from msgflo.transport import Binding, BindingType
from msgflo.transport.amqp_management import Links, bindings_from_links


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("1s", 1.0), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0), ("3", 3.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "1 parsec", "-1s", "s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_notifier_sends_ready_watchdog_and_status_on_the_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
        assert notifier.watchdog == 2.0
        notifier.ready("watching q")
        notifier.alive("q: ok")
        assert server.recv(1024) == b"READY=1\nSTATUS=watching q"
        assert server.recv(1024) == b"WATCHDOG=1\nSTATUS=q: ok"


def test_notifier_ignores_a_watchdog_meant_for_another_process() -> None:
    other = str(os.getpid() + 1)
    notifier = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": other})
    assert notifier.watchdog is None and notifier.address == "\0x"
    assert not Notifier({}).enabled


def test_status_line_off_a_terminal_prints_changes_only() -> None:
    stream = io.StringIO()
    line = StatusLine(stream)
    line.show("q: ok, 1 messages", "q:ok")
    line.show("q: ok, 2 messages", "q:ok")
    line.show("q: missed 1 of 3", "q:missed 1")
    assert stream.getvalue() == "q: ok, 1 messages\nq: missed 1 of 3\n"


def test_runtime_addresses() -> None:
    assert http_base("ws://127.0.0.1:3569") == "http://127.0.0.1:3569"
    assert http_base("wss://h:1/") == "https://h:1"
    assert http_base("127.0.0.1:3569") == "http://127.0.0.1:3569"
    with pytest.raises(SnapshotError, match="not a runtime address"):
        http_base("amqp://x")


def _text(snapshot: dict[str, object]) -> str:
    console = Console(file=io.StringIO(), width=200)
    console.print(render(snapshot))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_table_shows_edge_rates_depths_and_flags() -> None:
    snapshot = {
        "time": 1000.0,
        "graph": "main",
        "broker": "amqp://127.0.0.1",
        "nodes": [
            {
                "name": "sensor",
                "component": "S",
                "instances": 1,
                "restarts": 2,
                "last_seen": 990.0,
                "stale": True,
                "errors": 0,
                "inports": [],
                "outports": [{"id": "out", "queue": "sensor.OUT", "rate": 12.5}],
            }
        ],
        "edges": [
            {
                "id": "sensor.out -> sink.in",
                "src": {"node": "sensor", "port": "out"},
                "tgt": {"node": "sink", "port": "in"},
                "state": "wired",
                "rate": 12.5,
                "depth": 340,
                "stalled": True,
                "abnormal": False,
                "error": None,
            }
        ],
    }
    text = _text(snapshot)
    assert "sensor.out -> sink.in" in text and "12.5" in text and "340" in text
    assert "stalled" in text and "10s ago (stale)" in text


def test_table_from_an_api_listing_says_rates_are_unknown() -> None:
    snapshot = from_listing(
        {"graph": "g", "nodes": [{"name": "a", "component": "A", "inports": {"in": "a.IN"}}]}
    )
    text = _text(snapshot)
    assert "edges and rates unknown" in text and "in=a.IN (?)" in text


def test_management_links_become_bindings() -> None:
    links = Links(
        to_queues=frozenset(
            {
                ("a.OUT", "b.IN"),  # pubsub
                ("b.IN", "b.IN"),  # the inport's own exchange
                ("out-b.OUT", "c.IN"),  # round-robin
                ("dead-c.IN", "d.IN"),  # dead letters
            }
        ),
        to_exchanges=frozenset({("b.OUT", "out-b.OUT")}),
    )
    assert bindings_from_links(links) == [
        Binding("", "c.IN", BindingType.ROUNDROBIN, "d.IN"),
        Binding("a.OUT", "b.IN"),
        Binding("b.OUT", "c.IN", BindingType.ROUNDROBIN),
    ]


GRAPH = {
    "processes": {"a": {"component": "A"}, "b": {"component": "B"}, "c": {"component": "C"}},
    "connections": [
        {"src": {"process": "a", "port": "out"}, "tgt": {"process": "b", "port": "in"}},
        {"src": {"process": "b", "port": "out"}, "tgt": {"process": "c", "port": "in"}},
    ],
}


def test_compare_finds_missing_stale_and_extra_bindings() -> None:
    wanted, errors = expected(GRAPH)
    assert errors == [] and wanted == [Binding("a.OUT", "b.IN"), Binding("b.OUT", "c.IN")]
    actual = [
        Binding("a.OUT", "b.IN"),
        Binding("a.OUT", "c.IN"),  # both ends are the graph's: an edge removed from it
        Binding("b.OUT", "other.IN"),  # one end outside the graph
        Binding("x.OUT", "y.IN"),  # another network's
    ]
    found = [(d.kind, d.binding) for d in compare(GRAPH, wanted, actual)]
    assert found == [
        (Kind.MISSING, Binding("b.OUT", "c.IN")),
        (Kind.STALE, Binding("a.OUT", "c.IN")),
        (Kind.EXTRA, Binding("b.OUT", "other.IN")),
    ]
    assert compare(GRAPH, wanted, wanted) == []
