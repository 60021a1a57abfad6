"""docker-compose files, edited in place: a service per participant, the rest left as written.

A compose file grows things a generator cannot know (volumes, healthchecks, build contexts,
comments), so instead of regenerating it the generator edits it: a participant's service gets
the image and the library's command, a missing service is added, and a service that no longer
belongs to the graph is removed unless it is kept.  The file is read and written with
ruamel.yaml's round trip so comments, key order, quoting and unknown keys survive, and it is
only written when something changed (a second run leaves it alone).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from msgflo.deploy.roles import DeployError, Network, Role

BROKER_ENV = "MSGFLO_BROKER"
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


@dataclass(frozen=True)
class ComposeOptions:
    image: str
    broker: str = "amqp://broker"
    broker_service: str = "broker"
    keep: tuple[str, ...] = ()
    """Services left exactly as they are, participants or not."""
    ignore: tuple[str, ...] = ()
    """Roles that get no service; a service of that name is left as it is."""


def new_file(network: Network, options: ComposeOptions) -> str:
    """The starting point when there is no file: a RabbitMQ broker the participants use."""
    return (
        f"# Services of the msgflo network {network.name}, kept up to date by\n"
        f"# `msgflo-generate compose {network.graph_file}`: edit freely, it updates in place.\n"
        "services:\n"
        f"  {options.broker_service}:\n"
        "    image: rabbitmq:3-management\n"
        "    ports:\n"
        '      - "5672:5672"\n'
        '      - "15672:15672"\n'
    )


def guess_indent(text: str) -> tuple[int, int]:
    """How the file indents: spaces per mapping level, and how far a ``-`` sits in from its
    key, so that lines written back look like the user's."""
    mapping, dash = 0, None
    parents: list[int] = []
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        depth = len(line) - len(stripped)
        if stripped.startswith("- "):
            if dash is None and parents and depth >= parents[-1]:
                dash = depth - parents[-1]
            continue
        if depth and not mapping:
            mapping = depth
        parents = [d for d in parents if d < depth] + [depth]
    return mapping or 2, dash if dash is not None else 0


def _yaml(text: str) -> YAML:
    mapping, offset = guess_indent(text)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return yaml


def _load(text: str, source: str) -> tuple[CommentedMap, YAML]:
    yaml = _yaml(text)
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise DeployError(f"{source}{at}: not valid YAML: {exc.problem or exc.context}") from exc
    except YAMLError as exc:
        raise DeployError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, CommentedMap):
        raise DeployError(f"{source}: a compose file must be a mapping with 'services'")
    return data, yaml


def _services(data: CommentedMap, source: str) -> CommentedMap:
    services = data.get("services")
    if services is None:
        services = data["services"] = CommentedMap()
    if not isinstance(services, CommentedMap):
        raise DeployError(f"{source}: 'services' must be a mapping of name to service")
    return services


def _flow(items: Iterable[str]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _set(mapping: CommentedMap, key: str, value: Any) -> None:
    """Assign only on change, so an unchanged value keeps its formatting and comments."""
    current = mapping.get(key)
    same = list(current) == list(value) if isinstance(value, list) else current == value
    if key not in mapping or not same:
        mapping[key] = value


def _has_env(environment: Any, name: str) -> bool:
    if isinstance(environment, dict):
        return name in environment
    return any(str(item).split("=", 1)[0] == name for item in environment or [])


def _update_service(
    service: CommentedMap, role: Role, options: ComposeOptions, source: str
) -> None:
    _set(service, "image", options.image)
    command = service.get("command")
    if not (isinstance(command, list) and list(command) == list(role.argv)):
        service["command"] = _flow(role.argv)
    environment = service.get("environment")
    if environment is None:
        service["environment"] = CommentedMap({BROKER_ENV: options.broker})
    elif not _has_env(environment, BROKER_ENV):
        if isinstance(environment, CommentedMap):
            environment[BROKER_ENV] = options.broker
        elif isinstance(environment, CommentedSeq):
            environment.append(f"{BROKER_ENV}={options.broker}")
        else:
            raise DeployError(
                f"{source}: services.{role.name}.environment must be a mapping or list"
            )


def _new_service(role: Role, options: ComposeOptions, has_broker: bool) -> CommentedMap:
    service = CommentedMap()
    service["image"] = options.image
    service["command"] = _flow(role.argv)
    service["environment"] = CommentedMap({BROKER_ENV: options.broker})
    if has_broker:
        service["depends_on"] = _flow([options.broker_service])
    service["restart"] = "on-failure"
    return service


def update(text: str | None, network: Network, options: ComposeOptions, source: str) -> str:
    """The compose file ``text`` (``None``: there is none yet) brought in line with the graph."""
    data, yaml = _load(text if text is not None else new_file(network, options), source)
    services = _services(data, source)
    left_alone = {*options.keep, *options.ignore, options.broker_service}
    for role in network.roles:
        if not _SERVICE_NAME.fullmatch(role.name):
            raise DeployError(f"role {role.name!r} cannot name a compose service")
        if role.name == options.broker_service:
            raise DeployError(
                f"role {role.name!r} has the broker service's name; choose another with "
                "--broker-service"
            )
    roles = {role.name: role for role in network.roles}
    for name in [n for n in services if n not in roles and n not in left_alone]:
        del services[name]
    for name, role in roles.items():
        service = services.get(name)
        if service is None:
            services[name] = _new_service(role, options, options.broker_service in services)
        elif name in options.keep:
            continue
        elif isinstance(service, CommentedMap):
            _update_service(service, role, options, source)
        else:
            raise DeployError(f"{source}: services.{name} must be a mapping")
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def apply(path: Path, network: Network, options: ComposeOptions) -> bool:
    """Update the file at ``path`` (creating it if missing); ``True`` if it changed.  On any
    error the file is untouched."""
    try:
        text: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeployError(f"{path}: cannot read: {exc}") from exc
    updated = update(text, network, options, str(path))
    if updated == text:
        return False
    if text is None:
        path.write_text(updated, encoding="utf-8")
        return True
    directory = path.parent if str(path.parent) else Path()
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(updated)
        os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True
