"""Foreign participant declarations: both port forms, #ROLE, defaults and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from msgflo.foreign import DeclarationError, load_declaration

FIXTURES = Path(__file__).parent / "fixtures" / "library"


def test_list_form_keeps_explicit_port_ids() -> None:
    definition = load_declaration(FIXTURES / "toggleswitch.yml", "switch1")
    assert definition == {
        "component": "my/ToggleSwitch",
        "label": "A switch that can be on or off",
        "icon": "toggle-on",
        "role": "switch1",
        "id": "switch1",
        "inports": [],
        "outports": [
            {
                "id": "status",
                "queue": "/myswitch/switch1/status",
                "type": "boolean",
                "description": "true when on",
            }
        ],
    }


def test_map_form_takes_ids_from_keys_and_replaces_role() -> None:
    definition = load_declaration(FIXTURES / "lamp.yaml", "hall")
    assert [(p["id"], p["queue"], p["type"]) for p in definition["inports"]] == [
        ("power", "/lamps/hall/power", "boolean"),
        ("brightness", "/lamps/hall/brightness", "number"),
    ]
    assert definition["inports"][0]["description"] == "switch it on or off"
    assert definition["outports"] == [
        {"id": "level", "queue": "/lamps/hall/level", "type": "number"}
    ]


def test_json_declaration_with_its_own_role() -> None:
    definition = load_declaration(FIXTURES / "sensor.json")
    assert (definition["role"], definition["id"]) == ("kitchen", "kitchen")
    assert definition["outports"][0]["queue"] == "sensors/kitchen/temp"


def test_given_role_overrides_declared_role_and_declared_id_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "d.yml"
    path.write_text(
        "component: C\nrole: old\nid: fixed-id\noutports: {out: {queue: '#ROLE.OUT'}}\n"
    )
    definition = load_declaration(path, "new")
    assert (definition["role"], definition["id"]) == ("new", "fixed-id")
    assert definition["outports"][0]["queue"] == "new.OUT"


def test_defaults_make_a_complete_discovery_payload(tmp_path: Path) -> None:
    path = tmp_path / "d.yml"
    path.write_text("component: C\ninports:\n  in: string\n  raw:\n")
    definition = load_declaration(path, "r")
    assert set(definition) == {"id", "role", "component", "label", "icon", "inports", "outports"}
    assert definition["inports"] == [
        {"id": "in", "type": "string", "queue": "r.IN"},
        {"id": "raw", "type": "any", "queue": "r.RAW"},
    ]
    assert definition["outports"] == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no declaration found"),
        ("- a\n- b\n", "must be a mapping"),
        ("component: [unclosed\n", "not valid YAML"),
        ("label: x\n", "'component' is missing"),
        ("component: 3\n", "'component' must be a string"),
        ("component: C\ninports: 5\n", "'inports' must be a map"),
        ("component: C\ninports: [{queue: q}]\n", "'inports[0].id' must be a non-empty string"),
        ("component: C\ninports: [in]\n", "'inports[0]' must be a mapping"),
        ("component: C\noutports: {out: {queue: 5}}\n", "'outports.out.queue' must be a string"),
        ("component: C\noutports: {out: [1]}\n", "'outports.out' must be a mapping"),
    ],
)
def test_invalid_declarations_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(DeclarationError) as caught:
        load_declaration(path, "r")
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_role_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "d.yml"
    path.write_text("component: C\n")
    with pytest.raises(DeclarationError, match="'role' is not defined for component 'C'"):
        load_declaration(path)


def test_unreadable_and_invalid_json_files(tmp_path: Path) -> None:
    with pytest.raises(DeclarationError, match="cannot read"):
        load_declaration(tmp_path / "missing.yml", "r")
    path = tmp_path / "d.json"
    path.write_text("{component: C}")
    with pytest.raises(DeclarationError, match="not valid JSON"):
        load_declaration(path, "r")
