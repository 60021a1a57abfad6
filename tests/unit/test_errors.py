"""One base for msgflo's errors: callers catch a domain (or ``MsgfloError``), every error keeps
its cause, and every command turns one into a single line on stderr and exit code 1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import click
import pytest
from click.testing import CliRunner

from msgflo import errors
from msgflo.cli import (
    common,
    dump_message,
    generate,
    graph,
    procfile,
    python,
    register,
    register_foreign,
    script,
    send_message,
    setup,
    spec,
)
from msgflo.cli import msgflo as msgflo_cli
from msgflo.coordinator import CoordinatorError
from msgflo.deploy.autoscale import AutoscaleError
from msgflo.deploy.roles import DeployError
from msgflo.foreign import DeclarationError
from msgflo.graph import FbpSyntaxError, GraphValidationError, JsonFileError, load_graph
from msgflo.library import LibraryConfig, LibraryError
from msgflo.runtime import AccessError
from msgflo.runtime.access import load_secrets
from msgflo.runtime.protocol import component
from msgflo.runtime.protocol.messages import ProtocolError
from msgflo.runtime.request import Request
from msgflo.testing.spec import SuiteError
from msgflo.testing.spec.runner import CaseError
from msgflo.transport import Address, TransportError
from msgflo.wiring import Endpoint, WiringError
from tests.unit import test_runtime_support as support
from tests.unit.test_runtime_support import Rig

rig, rig_factory = support.rig, support.rig_factory


@pytest.mark.parametrize(
    ("error", "domain"),
    [
        (FbpSyntaxError, errors.GraphError),
        (GraphValidationError, errors.GraphError),
        (JsonFileError, errors.GraphError),
        (msgflo_cli.GraphFileError, errors.GraphError),
        (LibraryError, errors.LibraryError),
        (DeclarationError, errors.LibraryError),
        (TransportError, errors.ConnectError),
        (ProtocolError, errors.ProtocolError),
        (CoordinatorError, errors.NetworkError),
        (WiringError, errors.NetworkError),
        (AccessError, errors.ConfigError),
        (DeployError, errors.ConfigError),
        (AutoscaleError, errors.ConfigError),
        (SuiteError, errors.SpecError),
        (CaseError, errors.SpecError),
    ],
)
def test_every_error_belongs_to_a_domain_under_one_base(
    error: type[Exception], domain: type[errors.MsgfloError]
) -> None:
    assert issubclass(error, domain) and issubclass(domain, errors.MsgfloError)


# -- causes ---------------------------------------------------------------------------------


def test_a_graph_error_keeps_its_cause(tmp_path: Path) -> None:
    path = tmp_path / "latin1.fbp"
    path.write_bytes(b"a(A) OUT -> IN b(\xe9)\n")
    with pytest.raises(errors.GraphError, match="not a UTF-8 text file") as caught:
        load_graph(path)
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)


def test_a_library_error_keeps_its_cause(tmp_path: Path) -> None:
    path = tmp_path / "fbp-config.json"
    path.write_text("{not json")
    with pytest.raises(errors.LibraryError, match="not valid JSON") as caught:
        LibraryConfig.load(path)
    assert caught.value.__cause__ is not None
    assert isinstance(caught.value.__cause__, ValueError)


def test_a_connect_error_keeps_its_cause() -> None:
    with pytest.raises(errors.ConnectError, match="broker URL") as caught:
        Address.parse("amqp://localhost:port")
    assert isinstance(caught.value.__cause__, ValueError)


async def test_a_protocol_error_keeps_its_cause(rig: Rig) -> None:
    request = Request(
        rig.runtime,
        cast(Any, None),  # the request fails before anything is sent to its connection
        "component",
        "source",
        {"name": "Upper", "language": "cobol", "code": ""},
    )
    with pytest.raises(errors.ProtocolError, match="unknown language 'cobol'") as caught:
        await component.source(request)
    assert isinstance(caught.value.__cause__, errors.LibraryError)


async def test_a_network_error_keeps_its_cause(rig: Rig) -> None:
    coordinator = rig.coordinator
    await coordinator.add_node("a", "core/Repeat")
    await coordinator.add_node("b", "core/Repeat")
    await rig.participant("core/Repeat", "a")
    for _ in range(200):
        if "a" in coordinator.registry.definitions():
            break
        await asyncio.sleep(0.01)
    with pytest.raises(errors.NetworkError, match="nope") as caught:
        await coordinator.add_edge(Endpoint("a", "nope"), Endpoint("b", "in"))
    assert isinstance(caught.value.__cause__, WiringError)


def test_a_config_error_keeps_its_cause(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yml"
    path.write_text("a: [unclosed\n")
    with pytest.raises(errors.ConfigError, match="not valid YAML") as caught:
        load_secrets(path)
    assert caught.value.__cause__ is not None


def test_a_spec_error_keeps_its_cause(tmp_path: Path) -> None:
    from msgflo.testing.spec import load_suites

    unreadable = tmp_path / "latin1.yaml"
    unreadable.write_bytes(b"topic: \xe9\n")
    with pytest.raises(errors.SpecError, match="not a UTF-8 text file") as caught:
        load_suites([unreadable])
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)


# -- commands -------------------------------------------------------------------------------

BAD_BROKER = "amqp://localhost:port"
BROKER = ["--broker", "amqp://localhost"]  # named, so that the command does not say which it uses


def _commands(tmp: Path) -> list[tuple[str, click.Command, list[str], str]]:
    """(program, command, arguments, what the line says) for a domain error of each command."""
    missing = str(tmp / "missing.fbp")
    bad_declaration = tmp / "bad.yml"
    bad_declaration.write_text("component: x\ninports: 3\n")
    broken = tmp / "broken.py"
    broken.write_text("import no_such_module_anywhere\n")
    bad_suite = tmp / "bad.yaml"
    bad_suite.write_text("name: x\n")
    bad_library = tmp / "lib.json"
    bad_library.write_text("{not json")
    shell = tmp / "job.sh"
    shell.write_text("cat\n")
    return [
        ("msgflo", msgflo_cli.main, ["--graph", missing, "--port", "0"], "cannot read"),
        ("msgflo-setup", setup.main, [*BROKER, missing], "cannot read"),
        ("msgflo-python", python.main, [str(broken), "r"], "ModuleNotFoundError"),
        (
            "msgflo-send-message",
            send_message.main,
            ["--broker", BAD_BROKER, "--queue", "q", "--json", "1"],
            "broker URL",
        ),
        ("msgflo-dump-message", dump_message.main, ["--broker", BAD_BROKER, "--queue", "q"], "URL"),
        ("msgflo-register", register.main, [*BROKER, "--role", f"r:{bad_declaration}"], "inports"),
        (
            "msgflo-register-foreign",
            register_foreign.main,
            [*BROKER, "--role", "r", str(bad_declaration)],
            "inports",
        ),
        ("msgflo-script", script.main, ["--broker", BAD_BROKER, str(shell), "r"], "broker URL"),
        ("msgflo-graph", graph.main, ["check", "--library", str(bad_library), missing], "JSON"),
        ("msgflo-procfile", procfile.main, [missing], "cannot read"),
        ("msgflo-generate", generate.main, ["systemd", missing], "cannot read"),
        ("msgflo-spec", spec.main, [str(bad_suite)], "topic"),
    ]


def test_every_command_prints_a_domain_error_as_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for program, command, args, says in _commands(tmp_path):
        result = CliRunner().invoke(command, args)
        assert result.exit_code == 1, (program, result.output)
        lines = result.stderr.splitlines()
        if program == "msgflo-register-foreign":
            assert lines.pop(0).startswith("DEPRECATED: ")
        assert len(lines) == 1, (program, result.stderr)
        assert lines[-1].startswith(f"{program}: ") and says in lines[-1], (program, lines)


def test_a_bug_keeps_its_traceback() -> None:
    def bug() -> None:
        raise KeyError("a bug")

    def domain() -> None:
        raise errors.GraphError("g.fbp: no node named 'x'")

    def run(body: Callable[[], None]) -> BaseException | None:
        @click.command()
        def command() -> None:
            with common.one_line_errors("prog"):
                body()

        result = CliRunner().invoke(command, [])
        return result.exception

    assert isinstance(run(bug), KeyError)
    assert isinstance(run(domain), SystemExit)
