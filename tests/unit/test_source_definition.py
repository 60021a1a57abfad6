"""Definitions read from Python participant files without running them."""

from __future__ import annotations

from pathlib import Path

from msgflo.library import Library
from msgflo.runtime.components import component_payload
from msgflo.source_definition import python_definition

LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_modern_class_attributes_and_docstring(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Upper.py",
        "import msgflo\n"
        "raise SystemExit('never run')\n"
        "class Upper(msgflo.Participant):\n"
        '    """Upper-cases text\n\n    More words."""\n'
        "    component = 'demo/Upper'\n"
        "    inports = {'in': 'string'}\n"
        "    outports = {'out': 'string', 'error': {'type': 'object', 'description': 'x'}}\n",
    )
    assert python_definition(path) == {
        "component": "demo/Upper",
        "label": "Upper-cases text",
        "icon": "file-word-o",
        "inports": [{"id": "in", "type": "string"}],
        "outports": [{"id": "out", "type": "string"}, {"id": "error", "type": "object"}],
    }


def test_legacy_definition_dict() -> None:
    definition = python_definition(LEGACY / "Accumulate.py")
    assert definition["component"] == "Accumulate"
    assert [p["id"] for p in definition["inports"]] == ["add", "reset"]
    assert definition["outports"] == [{"id": "total", "type": "number"}]


def test_legacy_defaults_when_ports_are_not_given() -> None:
    definition = python_definition(LEGACY / "Repeat.py")
    assert definition["component"] == "PythonRepeat"
    assert definition["inports"] == [{"id": "in", "type": "any"}]


def test_decorated_function(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "double.py",
        "import msgflo\n"
        "@msgflo.component(inports={'in': 'number'}, outports={'out': 'number'})\n"
        "async def double(data):\n"
        '    """Doubles numbers"""\n'
        "    return {'out': data * 2}\n",
    )
    definition = python_definition(path)
    assert definition["component"] == "double" and definition["label"] == "Doubles numbers"
    assert definition["inports"] == [{"id": "in", "type": "number"}]


def test_what_cannot_be_read_gives_nothing(tmp_path: Path) -> None:
    assert python_definition(write(tmp_path, "broken.py", "class (:\n")) == {}
    assert python_definition(write(tmp_path, "plain.py", "X = 1\n")) == {}
    assert python_definition(tmp_path / "missing.py") == {}
    computed = write(
        tmp_path,
        "computed.py",
        "import msgflo\nPORTS = {'in': 'any'}\nclass C(msgflo.Participant):\n    inports = PORTS\n",
    )
    assert python_definition(computed)["inports"] == [{"id": "in", "type": "any"}]


def test_component_list_shows_ports_of_a_python_component_nobody_has_run(tmp_path: Path) -> None:
    (tmp_path / "participants").mkdir()
    (tmp_path / "participants" / "Accumulate.py").write_text((LEGACY / "Accumulate.py").read_text())
    library = Library.load(root=tmp_path)
    [component] = [c for c in library.components.values() if c.name == "Accumulate"]
    payload = component_payload(component, library)
    assert [p["id"] for p in payload["inPorts"]] == ["add", "reset"]
    assert payload["outPorts"] == [
        {"id": "total", "type": "number"},
        {"id": "dead_add", "type": "number"},
        {"id": "dead_reset", "type": "number"},
    ]
    assert payload["description"] == "Adds what arrives on add; reset sets the total"
