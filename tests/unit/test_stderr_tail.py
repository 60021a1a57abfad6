"""A participant that fails at start: its traceback is shown once, not at every restart, and
each restart line names the last error line instead of the whole output."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from msgflo.coordinator import Coordinator, CoordinatorOptions, Event, EventKind
from msgflo.library import Library, LibraryConfig
from msgflo.stderr_tail import MAX_SUMMARY, StderrTail
from msgflo.transport import get_broker

CRASH = """
def configure():
    raise ValueError("config value 'x' missing")
configure()
"""


def test_a_repeated_run_is_not_shown_again_and_a_different_one_is() -> None:
    tail = StderrTail()
    tail.new_run()
    assert [tail.add(line) for line in ("Traceback", "  in f", "ValueError: x")] == [True] * 3
    assert tail.summary() == "ValueError: x (full stderr above)"
    tail.new_run()
    assert [tail.add(line) for line in ("Traceback", "  in f", "ValueError: x")] == [False] * 3
    assert tail.summary() == "ValueError: x (same stderr as the run before, shown above)"
    tail.new_run()
    assert [tail.add(line) for line in ("Traceback", "  in g", "KeyError: y")] == [
        False,
        True,
        True,
    ]
    assert tail.summary() == "KeyError: y (full stderr above)"
    tail.new_run()
    assert tail.summary() == ""
    tail.add("x" * 5000)
    assert len(tail.summary()) == MAX_SUMMARY


async def test_a_participant_failing_at_start_shows_its_traceback_once(
    tmp_path: Path, prefix: str
) -> None:
    url = f"memory://{prefix}"
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    library = Library(
        LibraryConfig(components={"Crash": f"{sys.executable} {script}"}),
        componentdirs=[],
        root=tmp_path,
    )
    coordinator = Coordinator(
        get_broker(url),
        library,
        CoordinatorOptions(broker_url=url, max_failures=2, backoff_base=0.01),
    )
    seen: list[Event] = []
    gave_up = asyncio.Event()

    def listen(event: Event) -> None:
        seen.append(event)
        if event.kind is EventKind.ERROR:
            gave_up.set()

    coordinator.add_listener(listen)
    await coordinator.start()
    try:
        await coordinator.load_graph({"processes": {"c": {"component": "Crash"}}})
        await asyncio.wait_for(gave_up.wait(), 30)
    finally:
        await coordinator.stop()
    shown = [e.message for e in seen if e.kind is EventKind.OUTPUT]
    assert shown.count("Traceback (most recent call last):") == 1
    assert shown[-1] == "ValueError: config value 'x' missing"
    assert len([e for e in seen if e.kind is EventKind.PROCESS_STARTED]) == 3
    ends = [e.message for e in seen if e.kind in (EventKind.PROCESS_EXITED, EventKind.ERROR)]
    assert len(ends) == 3
    for end in ends:
        assert end.count("ValueError: config value 'x' missing") == 1, end
        assert "Traceback" not in end and len(end) < 250, end
    assert ends[0].endswith("(full stderr above)")
    assert ends[-1].endswith("(same stderr as the run before, shown above)")


STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


async def test_a_participant_killed_after_the_shutdown_grace_is_logged(
    tmp_path: Path, prefix: str
) -> None:
    url = f"memory://{prefix}"
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    library = Library(
        LibraryConfig(components={"Stubborn": f"{sys.executable} {script}"}),
        componentdirs=[],
        root=tmp_path,
    )
    coordinator = Coordinator(
        get_broker(url), library, CoordinatorOptions(broker_url=url, stop_grace=0.3)
    )
    seen: list[Event] = []
    ready = asyncio.Event()

    def listen(event: Event) -> None:
        seen.append(event)
        if event.kind is EventKind.PROCESS_READY:
            ready.set()

    coordinator.add_listener(listen)
    await coordinator.start()
    try:
        await coordinator.load_graph({"processes": {"s": {"component": "Stubborn"}}})
        await asyncio.wait_for(ready.wait(), 30)
    finally:
        await coordinator.stop()
    [pid] = [e.data["pid"] for e in seen if e.kind is EventKind.PROCESS_STARTED]
    warnings = [e.message for e in seen if e.kind is EventKind.WARNING]
    assert f"s: pid {pid} still running 0.3 s after SIGTERM; killed" in warnings
