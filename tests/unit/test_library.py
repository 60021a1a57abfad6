"""The component library: configuration files, handlers, templates, lookup and discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msgflo.library import (
    Component,
    Library,
    LibraryConfig,
    LibraryError,
    extension_for,
    language_for,
)

FIXTURES = Path(__file__).parent / "fixtures" / "library"


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def config(**settings: object) -> LibraryConfig:
    return LibraryConfig.from_mapping(settings)


# -- the original's expected expansions --------------------------------------------------


def test_nontrivial_config_expands_variables_and_leaves_role() -> None:
    library = Library.load(FIXTURES / "nontrivial.json", componentdirs=[])
    commands = {name: c.command for name, c in library.components.items()}
    assert commands == {
        "api/ConvertDocument": "noflo-runtime-msgflo --name #ROLE --graph api/ConvertDocument --prefetch=1 --deadletter=in",
        "api/SendMessageToUser": "noflo-runtime-msgflo --name #ROLE --graph api/SendMessageToUser --prefetch=10",
        "api/PropagateItem": "noflo-runtime-msgflo --name #ROLE --graph api/PropagateItem --prefetch=1 --deadletter propagate,unpropagate",
        "api/Router": "noflo-runtime-msgflo --name #ROLE --graph api/Router --prefetch=1 --deadletter in",
    }


def test_config_and_directory_components_are_both_listed(tmp_path: Path) -> None:
    write(tmp_path / "participants" / "participants.coffee")
    library = Library.load(FIXTURES / "nontrivial.json", root=tmp_path)
    assert {"api/ConvertDocument", "api/Router", "participants"} <= set(library.names())


def test_componentname_is_the_name_without_namespace() -> None:
    library = Library(
        config(
            components={
                "project/Foo": "msgflo-nodejs --name #ROLE --file api/#COMPONENTNAME.js --option 1"
            }
        ),
        componentdirs=[],
    )
    assert (
        library.command_line("project/Foo", "myrole")
        == "msgflo-nodejs --name myrole --file api/Foo.js --option 1"
    )
    assert library.command_args("project/Foo", "myrole") == [
        "msgflo-nodejs",
        "--name",
        "myrole",
        "--file",
        "api/Foo.js",
        "--option",
        "1",
    ]


def test_iips_are_single_quoted_compact_json() -> None:
    library = Library(config(components={"project/Foo": "run --iips #IIPS"}), componentdirs=[])
    iips = {"portA": "valueA", "portB": 3.14}
    assert (
        library.command_line("project/Foo", "myrole", iips)
        == """run --iips '{"portA":"valueA","portB":3.14}'"""
    )
    assert library.command_args("project/Foo", "myrole", iips)[-1] == (
        '{"portA":"valueA","portB":3.14}'
    )
    assert library.command_args("project/Foo", "r")[-1] == "{}"


def test_iips_with_spaces_and_quotes_survive_the_split() -> None:
    library = Library(config(components={"x/Y": "run --iips #IIPS --name #ROLE"}), componentdirs=[])
    iips = {"text": 'it\'s "quoted" and spaced', "list": [1, 2], "nested": {"a b": None}}
    argv = library.command_args("x/Y", "my role", iips)
    assert argv[0:2] == ["run", "--iips"]
    assert json.loads(argv[2]) == iips
    assert argv[3:] == ["--name", "my role"]


# -- markers -----------------------------------------------------------------------------


def test_component_marker_does_not_eat_componentname() -> None:
    library = Library(
        config(components={"ns/Foo": "run #COMPONENTNAME #COMPONENT #COMPONENTNAME"}),
        componentdirs=[],
    )
    assert library.get("ns/Foo").command == "run Foo ns/Foo Foo"


def test_longer_variable_names_win_over_their_prefixes() -> None:
    library = Library(
        config(variables={"A": "short", "AB": "long"}, components={"c": "run #AB #A #ABC"}),
        componentdirs=[],
    )
    assert library.get("c").command == "run long short longC"


def test_variables_may_contain_markers_and_other_variables(tmp_path: Path) -> None:
    write(tmp_path / "parts" / "repeat.py")
    library = Library(
        config(
            variables={"run": "#PY --verbose", "PY": "msgflo-python #FILENAME #ROLE"},
            handlers={".py": "#RUN"},
        ),
        componentdirs=["parts"],
        root=tmp_path,
    )
    assert library.command_args("repeat", "r1") == [
        "msgflo-python",
        "parts/repeat.py",
        "r1",
        "--verbose",
    ]


def test_variables_that_refer_to_each_other_in_a_loop_are_an_error() -> None:
    with pytest.raises(LibraryError, match="loop"):
        Library(config(variables={"A": "#B", "B": "#A"}, components={"c": "#A"}), componentdirs=[])


def test_replacement_text_is_taken_literally() -> None:
    library = Library(
        config(variables={"X": r"a\1$&b"}, components={"c": "run #X #ROLE"}), componentdirs=[]
    )
    assert library.command_line("c", r"role\0") == r"run a\1$&b 'role\0'"


def test_unbalanced_quotes_in_a_command_are_a_library_error() -> None:
    library = Library(config(components={"c": "run 'unterminated"}), componentdirs=[])
    with pytest.raises(LibraryError, match="'c'"):
        library.command_args("c", "r")


# -- directory components and handlers ----------------------------------------------------


def test_default_handlers_by_extension(tmp_path: Path) -> None:
    for name in ["a.py", "b.js", "c.coffee", "d.fbp", "e.json", "f.yml", "g.yaml", "h.sh"]:
        write(tmp_path / "participants" / name)
    write(tmp_path / "participants" / "notes.txt")
    library = Library(LibraryConfig(), root=tmp_path)
    argv = {name: library.command_args(name, "R", {"in": 1}) for name in library.names()}
    assert argv == {
        "a": ["msgflo-python", "participants/a.py", "R"],
        "b": ["msgflo-nodejs", "--name", "R", "participants/b.js"],
        "c": ["msgflo-nodejs", "--name", "R", "participants/c.coffee"],
        "d": ["noflo-runtime-msgflo", "--name", "R", "--graph", "d", "--iips", '{"in":1}'],
        "e": ["noflo-runtime-msgflo", "--name", "R", "--graph", "e", "--iips", '{"in":1}'],
        "f": ["msgflo-register", "--role", "R:participants/f.yml"],
        "g": ["msgflo-register", "--role", "R:participants/g.yaml"],
        "h": ["msgflo-script", "participants/h.sh", "R"],
    }
    languages = {name: c.language for name, c in library.components.items()}
    assert languages == {
        "a": "python",
        "b": "javascript",
        "c": "coffeescript",
        "d": None,
        "e": None,
        "f": "yaml",
        "g": "yaml",
        "h": "shell",
    }
    assert library.get("a").path == Path("participants/a.py")


def test_file_names_with_spaces_stay_one_argument(tmp_path: Path) -> None:
    write(tmp_path / "participants" / "my part.py")
    library = Library(LibraryConfig(), root=tmp_path)
    assert library.command_args("my part", "r") == ["msgflo-python", "participants/my part.py", "r"]


def test_components_directory_is_scanned_when_present(tmp_path: Path) -> None:
    write(tmp_path / "participants" / "a.py")
    write(tmp_path / "components" / "b.py")
    assert Library(LibraryConfig(), root=tmp_path).names() == ["a", "b"]


def test_missing_component_directories_give_an_empty_library(tmp_path: Path) -> None:
    assert Library(LibraryConfig(), root=tmp_path).names() == []
    assert Library(LibraryConfig(), componentdirs=["nowhere"], root=tmp_path).names() == []


def test_explicit_componentdir_replaces_the_defaults(tmp_path: Path) -> None:
    write(tmp_path / "participants" / "a.py")
    write(tmp_path / "mine" / "b.py")
    library = Library(LibraryConfig(), componentdirs=["mine"], root=tmp_path)
    assert library.names() == ["b"]
    assert library.command_args("b", "r") == ["msgflo-python", "mine/b.py", "r"]


def test_wildcard_handler_beats_extension_handler(tmp_path: Path) -> None:
    write(tmp_path / "participants" / "a.js")
    write(tmp_path / "components" / "b.js")
    write(tmp_path / "participants" / "c.test.js")
    settings = config(
        handlers={
            "components/*.js": "node #FILENAME --role #ROLE",
            "*.test.js": "mocha #FILENAME",
        }
    )
    library = Library(settings, root=tmp_path)
    assert library.command_line("a", "r") == "msgflo-nodejs --name r participants/a.js"
    assert library.command_line("b", "r") == "node components/b.js --role r"
    assert library.command_line("c.test", "r") == "mocha participants/c.test.js"


def test_user_handler_overrides_and_null_disables(tmp_path: Path) -> None:
    write(tmp_path / "participants" / "a.py")
    write(tmp_path / "participants" / "b.sh")
    library = Library(
        config(handlers={".py": "python3 #FILENAME --role #ROLE", ".sh": None}), root=tmp_path
    )
    assert library.names() == ["a"]
    assert library.command_line("a", "r") == "python3 participants/a.py --role r"


def test_namespace_prefixes_directory_components(tmp_path: Path) -> None:
    write(tmp_path / "participants" / "Repeat.py")
    library = Library(config(namespace="demo"), root=tmp_path)
    assert library.names() == ["demo/Repeat"]
    assert library.get("demo/Repeat").command == "msgflo-python participants/Repeat.py #ROLE"


def test_fbp_graph_component_uses_its_basename_for_the_graph(tmp_path: Path) -> None:
    write(tmp_path / "participants" / "Main.fbp")
    library = Library(config(namespace="demo"), root=tmp_path)
    assert library.command_args("demo/Main", "m") == [
        "noflo-runtime-msgflo",
        "--name",
        "m",
        "--graph",
        "Main",
        "--iips",
        "{}",
    ]


# -- configuration files --------------------------------------------------------------------

SETTINGS = {"components": {"x/Web": "node web.js --role #ROLE"}, "variables": {"V": "1"}}


def test_config_from_package_json_takes_namespace_from_name(tmp_path: Path) -> None:
    write(tmp_path / "package.json", json.dumps({"name": "shop", "msgflo": SETTINGS}))
    write(tmp_path / "participants" / "Cart.py")
    library = Library(root=tmp_path)
    assert library.config.source == tmp_path / "package.json"
    assert library.namespace == "shop"
    assert library.names() == ["shop/Cart", "x/Web"]
    assert library.config.variables == {"V": "1"}


def test_package_json_without_msgflo_key_is_no_config(tmp_path: Path) -> None:
    write(tmp_path / "package.json", json.dumps({"name": "shop", "components": {"a": "b"}}))
    write(tmp_path / "participants" / "Cart.py")
    library = Library(root=tmp_path)
    assert library.namespace is None
    assert library.names() == ["Cart"]


def test_config_from_pyproject_toml(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        """
[project]
name = "shop"

[tool.msgflo.components]
"x/Web" = "node web.js --role #ROLE"

[tool.msgflo.handlers]
".py" = "python3 #FILENAME #ROLE"
""",
    )
    write(tmp_path / "participants" / "Cart.py")
    library = Library(root=tmp_path)
    assert library.names() == ["shop/Cart", "x/Web"]
    assert library.command_args("Cart", "c") == ["python3", "participants/Cart.py", "c"]


def test_pyproject_namespace_setting_overrides_project_name(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml", '[project]\nname = "shop"\n[tool.msgflo]\nnamespace = "ns"\n'
    )
    assert Library(root=tmp_path).namespace == "ns"


def test_pyproject_without_tool_msgflo_is_no_config(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "shop"\n')
    write(tmp_path / "participants" / "Cart.py")
    assert Library(root=tmp_path).names() == ["Cart"]


def test_config_from_fbp_config_json_wins_over_package_json(tmp_path: Path) -> None:
    write(tmp_path / "fbp-config.json", json.dumps({"namespace": "first", **SETTINGS}))
    write(tmp_path / "package.json", json.dumps({"name": "second", "msgflo": {}}))
    library = Library(root=tmp_path)
    assert library.config.source == tmp_path / "fbp-config.json"
    assert library.namespace == "first"


def test_fbp_test_settings_in_fbp_config_json_are_not_a_library(tmp_path: Path) -> None:
    write(tmp_path / "fbp-config.json", json.dumps({"command": None, "port": 3569}))
    write(tmp_path / "package.json", json.dumps({"name": "shop", "msgflo": {}}))
    assert Library(root=tmp_path).namespace == "shop"


def test_no_config_file_is_an_empty_config(tmp_path: Path) -> None:
    library = Library(root=tmp_path)
    assert library.config == LibraryConfig()
    assert library.names() == []


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("package.json", '{"msgflo": {', "not valid JSON"),
        ("fbp-config.json", "[1, 2]", "must hold a JSON object"),
        ("pyproject.toml", "[tool.msgflo\n", "not valid TOML"),
        ("package.json", '{"msgflo": {"components": ["a"]}}', "'components' must be an object"),
        ("package.json", '{"msgflo": {"variables": {"A": 1}}}', "'variables.A' must be a string"),
        ("package.json", '{"msgflo": {"namespace": 3}}', "'namespace' must be a string"),
        ("package.json", '{"msgflo": "x"}', "must be an object"),
    ],
)
def test_malformed_config_is_a_one_line_error_naming_the_file(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    write(tmp_path / name, text)
    with pytest.raises(LibraryError) as caught:
        Library(root=tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / name}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_named_config_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match="cannot read"):
        Library.load(tmp_path / "library.json")


# -- lookup ----------------------------------------------------------------------------------


@pytest.fixture
def namespaced(tmp_path: Path) -> Library:
    write(tmp_path / "participants" / "Repeat.py")
    return Library(config(namespace="demo", components={"Plain": "plain #ROLE"}), root=tmp_path)


def test_lookup_exact_then_namespace_then_basename(namespaced: Library) -> None:
    assert namespaced.get("demo/Repeat").name == "demo/Repeat"
    assert namespaced.get("Repeat").name == "demo/Repeat"
    assert namespaced.get("other/Plain").name == "Plain"
    assert namespaced.find("other/Repeat") is None
    assert namespaced.find("Nothing") is None


def test_commands_use_the_same_lookup(namespaced: Library) -> None:
    assert namespaced.command_args("Repeat", "r") == [
        "msgflo-python",
        "participants/Repeat.py",
        "r",
    ]
    assert namespaced.command_args("x/Plain", "r") == ["plain", "r"]


def test_unknown_component_names_component_and_role(namespaced: Library) -> None:
    with pytest.raises(LibraryError, match="no component 'Nope' defined for role 'r1'"):
        namespaced.command_args("Nope", "r1")


# -- discovery --------------------------------------------------------------------------------

DISCOVERED = {
    "id": "rep-1234",
    "role": "rep",
    "component": "Repeat",
    "label": "Repeats",
    "icon": "file-word-o",
    "extra": {"firstSeen": 1},
    "inports": [{"id": "in", "type": "any", "queue": "rep.IN"}],
    "outports": [{"id": "out", "type": "any", "queue": "rep.OUT"}],
}


def test_discovered_component_is_listed_clean_but_not_startable() -> None:
    library = Library(LibraryConfig(), componentdirs=[])
    assert library.update_from_discovery(DISCOVERED) is True
    component = library.get("Repeat")
    assert component.definition == {
        "component": "Repeat",
        "label": "Repeats",
        "icon": "file-word-o",
        "inports": [{"id": "in", "type": "any"}],
        "outports": [{"id": "out", "type": "any"}],
    }
    assert not component.startable
    with pytest.raises(LibraryError, match="only known from discovery"):
        library.command_args("Repeat", "r")
    assert DISCOVERED["inports"][0]["queue"] == "rep.IN"  # type: ignore[index]


def test_discovery_reports_change_only_when_the_definition_changes() -> None:
    library = Library(LibraryConfig(), componentdirs=[])
    library.update_from_discovery(DISCOVERED)
    other_instance = {**DISCOVERED, "id": "rep-9", "role": "rep2", "extra": {"lastSeen": 5}}
    other_instance["inports"] = [{"id": "in", "type": "any", "queue": "rep2.IN"}]
    assert library.update_from_discovery(other_instance) is False
    assert library.update_from_discovery({**DISCOVERED, "label": "new"}) is True
    assert library.get("Repeat").definition["label"] == "new"  # type: ignore[index]


def test_discovery_of_a_library_component_keeps_its_command(namespaced: Library) -> None:
    assert namespaced.update_from_discovery(DISCOVERED) is True
    component = namespaced.get("demo/Repeat")
    assert component.definition is not None
    assert component.startable
    assert "Repeat" not in namespaced.components


def test_discovery_without_component_is_an_error() -> None:
    with pytest.raises(LibraryError, match="no component name"):
        Library(LibraryConfig(), componentdirs=[]).update_from_discovery({"id": "x"})


# -- sources -----------------------------------------------------------------------------------


def test_language_and_extension_maps() -> None:
    assert language_for(Path("a/b.py")) == "python"
    assert language_for(Path("b.yaml")) == "yaml"
    assert language_for(Path("b.fbp")) is None
    assert extension_for("shell") == ".sh"
    assert extension_for("coffeescript") == ".coffee"
    with pytest.raises(LibraryError, match="unknown language 'cobol'"):
        extension_for("cobol")


def test_source_path_of_existing_and_new_components(namespaced: Library) -> None:
    assert namespaced.source_path("Repeat") == Path("participants/Repeat.py")
    assert namespaced.source_path("demo/New", "javascript") == Path("participants/New.js")
    assert namespaced.source_path("Repeat", "shell") == Path("participants/Repeat.sh")
    with pytest.raises(LibraryError, match="no source file"):
        namespaced.source_path("Plain")


def test_added_source_file_becomes_a_component(namespaced: Library, tmp_path: Path) -> None:
    path = namespaced.source_path("demo/Fresh", "shell")
    write(tmp_path / path, "cat\n")
    added = namespaced.add_file(path)
    assert added == Component(
        "demo/Fresh",
        "msgflo-script participants/Fresh.sh #ROLE",
        "shell",
        Path("participants/Fresh.sh"),
    )
    assert namespaced.command_args("Fresh", "f") == ["msgflo-script", "participants/Fresh.sh", "f"]
