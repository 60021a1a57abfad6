"""msgflo-register and msgflo-register-foreign on the memory transport, and their usage errors."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from msgflo.cli import register, register_foreign
from msgflo.foreign import load_declaration
from msgflo.transport import Broker, Message, get_broker

FIXTURES = Path(__file__).parent / "fixtures" / "library"
SWITCH = FIXTURES / "toggleswitch.yml"
LAMP = FIXTURES / "lamp.yaml"
BIN = Path(sys.executable).parent


class Observer:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.envelopes: asyncio.Queue[Any] = asyncio.Queue()

    async def keep(self, message: Message) -> None:
        self.envelopes.put_nowait(message.data)

    async def next(self) -> Any:
        return await asyncio.wait_for(self.envelopes.get(), 5)


@pytest.fixture
def url() -> str:
    return f"memory://register-{uuid.uuid4().hex}"


@pytest.fixture
async def observer(url: str) -> AsyncIterator[Observer]:
    broker = get_broker(url)
    await broker.connect()
    watching = Observer(broker)
    await broker.subscribe_participant_change(watching.keep)
    yield watching
    await broker.disconnect()


async def test_one_round_sends_the_original_envelope(
    url: str, observer: Observer, capsys: pytest.CaptureFixture[str]
) -> None:
    definitions = [load_declaration(SWITCH, "switch1"), load_declaration(LAMP, "lamp1")]
    assert await register.register(url, definitions, interval=60, forever=False) == 0
    first, second = await observer.next(), await observer.next()
    assert set(first) == {"protocol", "command", "payload"}
    assert (first["protocol"], first["command"]) == ("discovery", "participant")
    payload = first["payload"]
    assert (payload["role"], payload["id"], payload["component"]) == (
        "switch1",
        "switch1",
        "my/ToggleSwitch",
    )
    assert {"label", "icon", "inports", "outports"} <= set(payload)
    assert payload["outports"] == [
        {
            "id": "status",
            "queue": "/myswitch/switch1/status",
            "type": "boolean",
            "description": "true when on",
        }
    ]
    assert second["payload"]["role"] == "lamp1"
    assert capsys.readouterr().out == "Sent discovery message for switch1, lamp1\n"


async def test_forever_repeats_until_stopped(url: str, observer: Observer) -> None:
    stop = asyncio.Event()
    definitions = [load_declaration(SWITCH, "switch2")]
    task = asyncio.create_task(
        register.register(url, definitions, interval=0.022, forever=True, stop=stop)
    )
    for _ in range(3):
        assert (await observer.next())["payload"]["id"] == "switch2"
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0


async def test_forever_process_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo-register"),
        "--broker",
        "memory://sigterm",
        "--role",
        f"s:{SWITCH}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "MSGFLO_DISCOVERY_PERIOD": "0.05"},
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line == b"Sent discovery message for s\n"
    proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, stderr


# -- the command line -------------------------------------------------------------------------


def invoke(command: Any, args: list[str], env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(command, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_no_forever_exits_zero_after_one_round() -> None:
    result = invoke(
        register.main,
        ["--no-forever", "--role", f"switch1:{SWITCH}", "--role", f"l:{LAMP}"],
        env={"MSGFLO_BROKER": "memory://cli"},
    )
    assert result.exit_code == 0
    assert result.stdout == "Sent discovery message for switch1, l\n"


def test_path_may_contain_colons(tmp_path: Path) -> None:
    path = tmp_path / "a:b.yml"
    path.write_text(SWITCH.read_text())
    result = invoke(
        register.main, ["--no-forever", "--broker", "memory://c", "--role", f"r:{path}"]
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "Missing option '--role ROLE:FILE'"),
        (["--role", "justarole"], 2, "'justarole' is not ROLE:FILE"),
        (["--role", ":file.yml"], 2, "is not ROLE:FILE"),
        (["--role", "r:missing.yml"], 1, "missing.yml: cannot read"),
        (["--role", f"r:{SWITCH}", "--interval", "0"], 2, "--interval"),
        (["--role", f"r:{SWITCH}", "--broker", "nope://x"], 1, "unsupported broker scheme"),
    ],
)
def test_usage_errors_are_one_line_and_non_zero(args: list[str], code: int, message: str) -> None:
    result = invoke(register.main, ["--no-forever", *args])
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_invalid_declaration_sends_nothing_and_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("component: C\noutports: 3\n")
    result = invoke(
        register.main, ["--broker", "memory://bad", "--role", f"a:{SWITCH}", "--role", f"b:{bad}"]
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"{bad}: 'outports' must be" in result.stderr


def test_help_describes_the_options() -> None:
    result = invoke(register.main, ["--help"])
    assert result.exit_code == 0
    for option in ("--role ROLE:FILE", "--interval", "--forever / --no-forever", "--broker"):
        assert option in result.output


# -- the deprecated single form ------------------------------------------------------------------


def test_register_foreign_warns_and_sends_once_by_default() -> None:
    result = invoke(
        register_foreign.main,
        [str(FIXTURES / "sensor.json"), "--broker", "memory://foreign"],
    )
    assert result.exit_code == 0
    assert result.stdout == "Sent discovery message for kitchen\n"
    assert result.stderr.startswith("DEPRECATED: Instead use msgflo-register --role")


def test_register_foreign_role_option_overrides() -> None:
    result = invoke(
        register_foreign.main,
        [str(FIXTURES / "sensor.json"), "--role", "cellar", "--broker", "memory://foreign"],
    )
    assert result.stdout == "Sent discovery message for cellar\n"


def test_register_foreign_needs_a_role() -> None:
    result = invoke(register_foreign.main, [str(SWITCH), "--broker", "memory://foreign"])
    assert result.exit_code == 1
    assert "'role' is not defined for component 'my/ToggleSwitch'" in result.stderr
