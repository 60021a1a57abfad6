"""msgflo-script: a shell snippet or script file as a participant, on the memory transport."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import msgflo.testing
from msgflo.cli import script
from msgflo.cli.script import ScriptParticipant, script_argv
from msgflo.testing import ParticipantProbe
from msgflo.transport import Message

BIN = Path(sys.executable).parent


def snippet(command: str, role: str = "sh") -> ScriptParticipant:
    return ScriptParticipant(script_argv(None, command), role, "msgflo/Script")


async def run_once(command: str, data: Any) -> Any:
    async with msgflo.testing.participant(snippet(command), "sh") as p:
        await p.send("in", data)
        return await p.receive("out")


async def test_text_goes_in_raw_and_comes_out_as_text() -> None:
    assert await run_once("tr a-z A-Z", "hello world") == "HELLO WORLD"


async def test_structured_data_goes_in_as_json_and_comes_back_decoded() -> None:
    data = {"name": "x y", "values": [1, 2.5, None, True]}
    assert await run_once("cat", data) == data
    assert await run_once("cat", 42) == 42


async def test_output_is_json_when_it_parses() -> None:
    assert await run_once("""echo '{"n": 3}'""", "") == {"n": 3}
    assert await run_once("wc -c", "abcd") == 4


async def test_only_one_trailing_newline_is_stripped() -> None:
    assert await run_once("printf 'a\\n\\n'", "") == "a\n"
    assert await run_once("printf 'no newline'", "") == "no newline"


@pytest.fixture
async def failing() -> AsyncIterator[ParticipantProbe]:
    async with msgflo.testing.participant(snippet("read x; echo bad $x >&2; exit 3"), "f") as p:
        yield p


async def test_failure_sends_stderr_and_exit_code_to_error_and_nacks(
    failing: ParticipantProbe,
) -> None:
    msg = Message.from_data(failing.participant.inport("in")["queue"], "input", port="in")
    await failing.participant.process("in", msg)
    assert await failing.receive("error") == {"error": "bad input", "code": 3, "data": "input"}
    assert msg.nacked
    assert failing.pending("out") == 0


async def test_failure_arriving_from_the_broker_goes_to_error(failing: ParticipantProbe) -> None:
    await failing.send("in", {"k": 1})
    error = await failing.receive("error")
    assert error == {"error": 'bad {"k":1}', "code": 3, "data": {"k": 1}}


async def test_silent_failure_reports_the_exit_code() -> None:
    async with msgflo.testing.participant(snippet("exit 4"), "s") as p:
        await p.send("in", "x")
        assert await p.receive("error") == {"error": "exited with code 4", "code": 4, "data": "x"}


async def test_unrunnable_script_is_reported(tmp_path: Path) -> None:
    missing = ScriptParticipant([str(tmp_path / "gone")], "m", "gone")
    async with msgflo.testing.participant(missing, "m") as p:
        await p.send("in", "x")
        error = await p.receive("error")
        assert error["error"].startswith(f"cannot run {tmp_path / 'gone'}")
        assert error["code"] is None


async def test_messages_run_one_at_a_time_in_order(tmp_path: Path) -> None:
    # mkdir is atomic: a second script running at the same time would find the lock taken.
    command = (
        f'mkdir "{tmp_path}/lock" || {{ echo overlap >&2; exit 1; }}; '
        f'n=$(cat); sleep "0.0$n"; rmdir "{tmp_path}/lock"; echo "$n"'
    )
    async with msgflo.testing.participant(snippet(command), "seq") as p:
        for n in (5, 1, 3, 0, 2):
            await p.send("in", n)
        assert [await p.receive("out") for _ in range(5)] == [5, 1, 3, 0, 2]
        assert p.pending("error") == 0


async def test_script_files_run_directly_when_executable_else_through_sh(tmp_path: Path) -> None:
    executable = tmp_path / "count.py"
    executable.write_text(f"#!{sys.executable}\nimport sys\nprint(len(sys.stdin.read()))\n")
    executable.chmod(0o755)
    plain = tmp_path / "upper.sh"
    plain.write_text("tr a-z A-Z\n")
    assert script_argv(executable, None) == [str(executable)]
    assert script_argv(plain, None) == ["/bin/sh", str(plain)]
    for path, expected in ((executable, 3), (plain, "ABC")):
        participant = ScriptParticipant(script_argv(path, None), "f", path.stem)
        async with msgflo.testing.participant(participant, "f") as p:
            await p.send("in", "abc")
            assert await p.receive("out") == expected


def test_definition_announces_the_component_and_ports() -> None:
    definition = ScriptParticipant(["cat"], "wc", "ns/wordcount").definition
    assert (definition["role"], definition["component"]) == ("wc", "ns/wordcount")
    assert [p["id"] for p in definition["inports"]] == ["in"]
    assert [p["id"] for p in definition["outports"]] == ["out", "error"]


# -- the command ----------------------------------------------------------------------------


async def ready_then_stop(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo-script"),
        *args,
        "--broker",
        "memory://script",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, stderr
    return line.decode()


async def test_process_prints_one_ready_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    assert await ready_then_stop("--command", "cat", "upper") == (
        "upper(msgflo/Script) ready on memory://script\n"
    )
    file = tmp_path / "wordcount.sh"
    file.write_text("wc -w\n")
    assert await ready_then_stop(str(file), "wc") == "wc(wordcount) ready on memory://script\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "expected FILE ROLE, got 0 argument(s)"),
        (["--command", "cat", "a", "b"], "expected ROLE, got 2 argument(s)"),
        (["missing.sh", "r"], "missing.sh: no such script file"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(script.main, args)
    assert result.exit_code == 2
    assert message in result.output


async def test_a_run_over_the_timeout_is_killed_and_reported() -> None:
    slow = ScriptParticipant(script_argv(None, "read x; sleep 30"), "t", "msgflo/Script", 0.3)
    async with msgflo.testing.participant(slow, "t") as p:
        await p.send("in", "first")
        report = await p.receive("error")
        assert report == {"error": "no result within 0.3 s; killed", "code": None, "data": "first"}
        await p.send("in", "second")  # the participant goes on with the next message
        assert (await p.receive("error"))["data"] == "second"
