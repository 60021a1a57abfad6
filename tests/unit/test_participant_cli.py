"""Usage errors of the participant commands: one clear line, a non-zero exit, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from msgflo.cli import dump_message, python, send_message
from msgflo.transport import TransportError, get_client

LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy"


def invoke(command: object, args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(command, args)  # type: ignore[arg-type]
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_file_without_participant_class(tmp_path: Path) -> None:
    empty = tmp_path / "nothing.py"
    empty.write_text("X = 1\n")
    code, output = invoke(python.main, [str(empty), "role"])
    assert code == 2
    assert "defines no msgflo.Participant subclass" in output


def test_role_is_required() -> None:
    code, output = invoke(python.main, [str(LEGACY / "Repeat.py")])
    assert code == 2
    assert "Missing argument 'ROLE'" in output


def test_file_that_fails_to_import(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anywhere\n")
    code, output = invoke(python.main, [str(broken), "role"])
    assert code == 1
    assert "ModuleNotFoundError" in output and "broken.py" in output


def test_bad_iips_json() -> None:
    code, output = invoke(python.main, [str(LEGACY / "Repeat.py"), "r", "--iips", "{nope"])
    assert code == 2
    assert "--iips" in output and "not valid JSON" in output


def test_iips_must_be_an_object() -> None:
    code, output = invoke(python.main, [str(LEGACY / "Repeat.py"), "r", "--iips", "[1]"])
    assert code == 2
    assert "JSON object" in output


def test_several_classes_need_a_choice(tmp_path: Path) -> None:
    two = tmp_path / "two.py"
    two.write_text(
        "import msgflo\n"
        "class A(msgflo.Participant):\n    pass\n"
        "class B(msgflo.Participant):\n    pass\n"
    )
    code, output = invoke(python.main, [str(two), "role"])
    assert code == 2 and "choose with --class" in output
    code, output = invoke(python.main, [str(two), "role", "--class", "C"])
    assert code == 2 and "found: A, B" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--json", "{}"], "Missing queue to send to (--queue)"),
        (["--queue", "q"], "Give the message payload: --json, or --lines FILE"),
        (["--queue", "q", "--json", "{oops"], "Invalid JSON in --json"),
        (["--queue", "q", "--json", "alice,30"], """a string needs JSON quotes: '"alice,30"'"""),
    ],
)
def test_send_message_validation(args: list[str], message: str) -> None:
    code, output = invoke(send_message.main, args)
    assert code == 2
    assert message in output


def test_send_message_lines_names_the_bad_line(tmp_path: Path) -> None:
    lines = tmp_path / "people.jsonl"
    lines.write_text('{"name": "bob"}\n\n42\nalice\n')
    code, output = invoke(send_message.main, ["--queue", "q", "--lines", str(lines)])
    assert code == 2
    assert f"Invalid JSON in {lines}:4" in output and """quotes: '"alice"'""" in output
    code, output = invoke(send_message.main, ["-q", "q", "--lines", str(lines), "--json", "1"])
    assert code == 2 and "one of them" in output


def test_dump_message_needs_a_queue() -> None:
    code, output = invoke(dump_message.main, [])
    assert code == 2 and "--queue" in output


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(TransportError, match=r"known: amqp://, amqps://, memory://, mqtt://"):
        get_client("ftp://example")


def test_help_on_every_participant_command() -> None:
    for command in (python.main, send_message.main, dump_message.main):
        code, output = invoke(command, ["--help"])
        assert code == 0 and "--broker" in output
