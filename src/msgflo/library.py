"""The component library: which components exist and how to start a participant for each.

Pure logic, no processes.  Components come from three places, later ones updating earlier ones:
files in the component directories (a handler per file kind turns a file into a command), the
``components`` of the project's msgflo configuration, and discovery messages of participants
that run anyway (those are listable but, having no command, cannot be started).

Commands are templates.  ``#NAME`` markers are replaced by user variables first (so a variable
may contain other markers), then by ``#FILENAME``, ``#COMPONENTNAME`` and ``#COMPONENT`` when
the library is loaded, and by ``#ROLE`` and ``#IIPS`` when a participant is started.  A longer
marker name always wins over a shorter one it starts with (the original replaced ``#COMPONENT``
inside ``#COMPONENTNAME``), and the finished command is split with :mod:`shlex` into an argv.
"""

from __future__ import annotations

import copy
import re
import shlex
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from msgflo.errors import LibraryError as LibraryError
from msgflo.transport import encode

DEFAULT_HANDLERS: dict[str, str] = {
    ".py": "msgflo-python #FILENAME #ROLE",
    ".js": "msgflo-nodejs --name #ROLE #FILENAME",
    ".coffee": "msgflo-nodejs --name #ROLE #FILENAME",
    ".fbp": "noflo-runtime-msgflo --name #ROLE --graph #COMPONENT --iips #IIPS",
    ".json": "noflo-runtime-msgflo --name #ROLE --graph #COMPONENT --iips #IIPS",
    ".yml": "msgflo-register --role #ROLE:#FILENAME",
    ".yaml": "msgflo-register --role #ROLE:#FILENAME",
    ".sh": "msgflo-script #FILENAME #ROLE",
}

LANGUAGE_EXTENSIONS: dict[str, str] = {
    "python": ".py",
    "javascript": ".js",
    "coffeescript": ".coffee",
    "yaml": ".yml",
    "shell": ".sh",
    "c++": ".cpp",
    "rust": ".rs",
}
"""Language names as the FBP protocol's ``component:source`` uses them, and their file kind."""

EXTENSION_LANGUAGES: dict[str, str] = {
    **{ext: lang for lang, ext in LANGUAGE_EXTENSIONS.items()},
    ".yaml": "yaml",
}

DEFAULT_COMPONENT_DIRS: tuple[str, ...] = ("participants", "components")
CONFIG_FILES: tuple[str, ...] = ("fbp-config.json", "package.json", "pyproject.toml")
"""Searched in this order when no configuration file is named; the first with msgflo settings wins."""

CONFIG_KEYS = ("components", "variables", "handlers", "namespace")
MAX_VARIABLE_DEPTH = 10


@dataclass
class Component:
    """One entry of the library.

    ``command`` is the template with ``#ROLE`` and ``#IIPS`` still in it, or ``None`` for a
    component only known from discovery.  ``path`` is the source file of a directory component.
    """

    name: str
    command: str | None = None
    language: str | None = None
    path: Path | None = None
    definition: dict[str, Any] | None = None

    @property
    def startable(self) -> bool:
        return self.command is not None


@dataclass
class LibraryConfig:
    """The msgflo settings of a project, from whichever file held them (``source``)."""

    components: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    handlers: dict[str, str | None] = field(default_factory=dict)
    namespace: str | None = None
    source: Path | None = None

    @classmethod
    def from_mapping(
        cls, raw: Mapping[str, Any], source: Path | None = None, namespace: str | None = None
    ) -> LibraryConfig:
        """Validate ``raw`` (the msgflo settings themselves); ``namespace`` is the fallback taken
        from the enclosing package's name.  An explicit ``namespace: ""`` means none."""
        where = str(source) if source else "library configuration"
        if not isinstance(raw, Mapping):
            raise LibraryError(f"{where}: msgflo settings must be an object")
        explicit = raw.get("namespace", namespace)
        if explicit is not None and not isinstance(explicit, str):
            raise LibraryError(f"{where}: 'namespace' must be a string")
        return cls(
            components=_string_map(raw, "components", where),
            variables={k.upper(): v for k, v in _string_map(raw, "variables", where).items()},
            handlers=_string_map(raw, "handlers", where, allow_null=True),
            namespace=explicit or None,
            source=source,
        )

    @classmethod
    def load(cls, path: Path) -> LibraryConfig | None:
        """The settings in ``path``, or ``None`` when it exists but holds none for msgflo.

        ``package.json`` counts only with a ``msgflo`` key and ``pyproject.toml`` only with a
        ``[tool.msgflo]`` table (the original took a whole package.json as the configuration
        and so put every component under the package's name); any other JSON file may hold the
        settings at its top level or under ``msgflo``.
        """
        if path.suffix == ".toml":
            return cls._from_toml(path)
        try:
            raw = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise LibraryError(f"{path}: cannot read: {exc.strerror}") from exc
        except orjson.JSONDecodeError as exc:
            raise LibraryError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise LibraryError(f"{path}: must hold a JSON object")
        if "msgflo" in raw:
            package = raw.get("name")
            return cls.from_mapping(
                raw["msgflo"], path, package if isinstance(package, str) else None
            )
        if path.name == "package.json" or not any(key in raw for key in CONFIG_KEYS):
            return None
        return cls.from_mapping(raw, path)

    @classmethod
    def _from_toml(cls, path: Path) -> LibraryConfig | None:
        try:
            with path.open("rb") as stream:
                raw = tomllib.load(stream)
        except OSError as exc:
            raise LibraryError(f"{path}: cannot read: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise LibraryError(f"{path}: not valid TOML: {exc}") from exc
        settings = raw.get("tool", {}).get("msgflo")
        if settings is None:
            return None
        project = raw.get("project", {}).get("name")
        return cls.from_mapping(settings, path, project if isinstance(project, str) else None)

    @classmethod
    def find(cls, directory: Path) -> LibraryConfig:
        """The first of :data:`CONFIG_FILES` in ``directory`` that has msgflo settings; none at
        all is an empty configuration, not an error."""
        for name in CONFIG_FILES:
            path = directory / name
            if path.is_file():
                config = cls.load(path)
                if config is not None:
                    return config
        return cls()


def _string_map(
    raw: Mapping[str, Any], key: str, where: str, *, allow_null: bool = False
) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise LibraryError(f"{where}: '{key}' must be an object of name to text")
    for name, item in value.items():
        if not isinstance(item, str) and not (allow_null and item is None):
            raise LibraryError(f"{where}: '{key}.{name}' must be a string")
    return dict(value)


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Replace ``#NAME`` markers in one pass, the longest name first, so ``#COMPONENTNAME``
    is never read as ``#COMPONENT`` + ``NAME`` and replaced text is never scanned again."""
    if not values:
        return template
    names = sorted(values, key=len, reverse=True)
    pattern = re.compile("#(" + "|".join(re.escape(name) for name in names) + ")")
    return pattern.sub(lambda match: values[match.group(1)], template)


def expand_variables(template: str, variables: Mapping[str, str]) -> str:
    """Apply user variables until none is left, so a variable may use another one."""
    for _ in range(MAX_VARIABLE_DEPTH):
        expanded = substitute(template, variables)
        if expanded == template:
            return expanded
        template = expanded
    raise LibraryError(f"variables refer to each other in a loop while expanding {template!r}")


def iips_argument(iips: Mapping[str, Any]) -> str:
    """The original's single-quoted compact JSON, quoted so that shlex and shells both give
    the JSON back intact (even with spaces or quotes in it)."""
    return shlex.quote(encode(dict(iips)).decode("utf-8"))


def language_for(path: Path) -> str | None:
    return EXTENSION_LANGUAGES.get(path.suffix)


def extension_for(language: str) -> str:
    try:
        return LANGUAGE_EXTENSIONS[language]
    except KeyError as exc:
        known = ", ".join(sorted(LANGUAGE_EXTENSIONS))
        raise LibraryError(f"unknown language {language!r} (known: {known})") from exc


def _handler_specificity(pattern: str) -> int:
    return len(re.sub(r"\[[^]]*\]|[*?]", "", pattern))


def clean_definition(definition: Mapping[str, Any]) -> dict[str, Any]:
    """A discovered definition as a component: what every instance of it has in common."""
    cleaned = {
        key: copy.deepcopy(value)
        for key, value in definition.items()
        if key not in ("id", "role", "extra")
    }
    for kind in ("inports", "outports"):
        ports = cleaned.get(kind)
        if isinstance(ports, list):
            cleaned[kind] = [
                {k: v for k, v in port.items() if k != "queue"} if isinstance(port, dict) else port
                for port in ports
            ]
    return cleaned


class Library:
    """Components by name, with the one lookup rule every caller uses (:meth:`find`)."""

    def __init__(
        self,
        config: LibraryConfig | None = None,
        componentdirs: Sequence[str | Path] | None = None,
        root: Path = Path(),
    ) -> None:
        """``root`` is where relative component directories are read; ``#FILENAME`` is the
        directory as given joined with the file name, as the original's command lines are."""
        self.config = config if config is not None else LibraryConfig.find(root)
        self.root = root
        self.handlers: dict[str, str | None] = {**DEFAULT_HANDLERS, **self.config.handlers}
        if componentdirs is None:
            componentdirs = [d for d in DEFAULT_COMPONENT_DIRS if (root / d).is_dir()]
        self.componentdirs = [Path(d) for d in componentdirs]
        self.components: dict[str, Component] = {}
        for directory in self.componentdirs:
            self._scan(directory)
        for name, template in self.config.components.items():
            self.components[name] = Component(name, self._base_command(template, name))

    @classmethod
    def load(
        cls,
        config_file: Path | None = None,
        componentdirs: Sequence[str | Path] | None = None,
        root: Path = Path(),
    ) -> Library:
        """A library from a named configuration file (which must exist), or from the first
        configuration file found in ``root``."""
        config = None
        if config_file is not None:
            config = LibraryConfig.load(config_file) or LibraryConfig(source=config_file)
        return cls(config, componentdirs, root)

    @property
    def namespace(self) -> str | None:
        return self.config.namespace

    # -- building ------------------------------------------------------------------------

    def _scan(self, directory: Path) -> None:
        absolute = self.root / directory
        if not absolute.is_dir():
            return
        try:
            entries = sorted(absolute.iterdir())
        except OSError as exc:
            raise LibraryError(f"{absolute}: cannot read: {exc.strerror or exc}") from exc
        for entry in entries:
            if entry.is_file():
                self.add_file(directory / entry.name)

    def handler_for(self, path: Path) -> str | None:
        """The template for a file: the handler whose key matches it most specifically.

        Keys are extensions (``.js``) or shell-style patterns matched from the right of the
        path, one segment per ``/`` (``components/*.js``), so the longest literal text wins.
        """
        best: tuple[int, str | None] | None = None
        for key, template in self.handlers.items():
            pattern = f"*{key}" if key.startswith(".") and "/" not in key else key
            if path.match(pattern):
                rank = _handler_specificity(pattern)
                if best is None or rank >= best[0]:
                    best = (rank, template)
        return best[1] if best else None

    def add_file(self, path: Path) -> Component | None:
        """Make ``path`` (relative to ``root``) a component, if a handler takes files like it."""
        template = self.handler_for(path)
        if not template:
            return None
        basename = path.stem
        name = f"{self.namespace}/{basename}" if self.namespace else basename
        command = self._base_command(
            template, basename, filename=path.as_posix(), componentname=basename
        )
        component = Component(name, command, language_for(path), path)
        self.components[name] = component
        return component

    def _base_command(
        self,
        template: str,
        component: str,
        *,
        filename: str | None = None,
        componentname: str | None = None,
    ) -> str:
        values = {
            "COMPONENT": shlex.quote(component),
            "COMPONENTNAME": shlex.quote(componentname or component.split("/", 1)[-1]),
        }
        if filename is not None:
            values["FILENAME"] = shlex.quote(filename)
        return substitute(expand_variables(template, self.config.variables), values)

    def update_from_discovery(self, definition: Mapping[str, Any]) -> bool:
        """Remember what a running participant says its component is; ``True`` if that is new
        or differs from what was known.  A component the library can start keeps its command."""
        name = definition.get("component")
        if not isinstance(name, str) or not name:
            raise LibraryError("discovery definition has no component name")
        cleaned = clean_definition(definition)
        existing = self.find(name)
        if existing is None:
            self.components[name] = Component(name, definition=cleaned)
            return True
        if existing.definition == cleaned:
            return False
        existing.definition = cleaned
        return True

    def forget_discovered(self, name: str) -> None:
        """Drop a component known only from discovery (its last participant is forgotten); one
        the library can start or that its configuration declares stays."""
        component = self.components.get(name)
        if component is None or name in self.config.components:
            return
        if not component.startable and component.path is None:
            del self.components[name]

    # -- lookup ------------------------------------------------------------------------

    def find(self, name: str) -> Component | None:
        """The exact name, then the name in this project's namespace, then the name without
        its namespace."""
        for candidate in self._candidates(name):
            component = self.components.get(candidate)
            if component is not None:
                return component
        return None

    def _candidates(self, name: str) -> Iterable[str]:
        yield name
        if "/" in name:
            yield name.rsplit("/", 1)[1]
        elif self.namespace:
            yield f"{self.namespace}/{name}"

    def get(self, name: str) -> Component:
        component = self.find(name)
        if component is None:
            raise LibraryError(f"no component {name!r} in the library")
        return component

    def names(self) -> list[str]:
        return sorted(self.components)

    # -- commands ------------------------------------------------------------------------

    def command_line(self, component: str, role: str, iips: Mapping[str, Any] | None = None) -> str:
        """The shell-quoted command that starts ``component`` as ``role`` (for Procfiles)."""
        found = self.find(component)
        if found is None or found.command is None:
            why = "defined" if found is None else "startable (it is only known from discovery)"
            raise LibraryError(f"no component {component!r} {why} for role {role!r}")
        return substitute(
            found.command, {"ROLE": shlex.quote(role), "IIPS": iips_argument(iips or {})}
        )

    def command_args(
        self, component: str, role: str, iips: Mapping[str, Any] | None = None
    ) -> list[str]:
        """The argv that starts ``component`` as ``role``, with ``iips`` for ``#IIPS``."""
        line = self.command_line(component, role, iips)
        try:
            return shlex.split(line)
        except ValueError as exc:
            raise LibraryError(f"component {component!r}: command {line!r}: {exc}") from exc

    # -- sources -------------------------------------------------------------------------

    def source_path(self, name: str, language: str | None = None) -> Path:
        """Where the source of ``name`` is, or would be written in ``language``: the file of a
        directory component, else a new file in the first component directory."""
        found = self.find(name)
        if (
            found is not None
            and found.path is not None
            and (language is None or found.language == language)
        ):
            return found.path
        if language is None:
            raise LibraryError(f"component {name!r} has no source file; name a language")
        directory = self.componentdirs[0] if self.componentdirs else Path(DEFAULT_COMPONENT_DIRS[0])
        return directory / f"{name.rsplit('/', 1)[-1]}{extension_for(language)}"
