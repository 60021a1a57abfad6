"""Who may do what: secrets, access levels and the capabilities each level grants.

The original ignored the secret (every client could do everything, including writing code into
the component directory) and echoed it to every client. Here a secret selects a level, a client
without one gets the default level, and a wrong secret is refused outright. A runtime that
listens beyond this machine without any secret gets a generated one, since full access means
running code on the host (``component:source``).
"""

from __future__ import annotations

import enum
import ipaddress
import secrets as tokens
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from msgflo.errors import ConfigError


class AccessError(ConfigError):
    """A secrets file or access setting that cannot be used; names the file and entry."""


class Level(enum.StrEnum):
    NONE = "none"
    READ = "read"
    FULL = "full"


READ_CAPABILITIES: tuple[str, ...] = (
    "graph:readonly",
    "network:status",
    "network:data",
    "protocol:component",
    "component:getsource",
)
"""Follow the graph and the data, list and read components; change nothing."""

ALL_CAPABILITIES: tuple[str, ...] = (
    "protocol:runtime",
    "protocol:graph",
    "protocol:component",
    "protocol:network",
    "protocol:trace",
    "graph:readonly",
    "network:status",
    "network:data",
    "network:control",
    "network:persist",
    "component:getsource",
    "component:setsource",
)

CAPABILITIES: Mapping[Level, tuple[str, ...]] = {
    Level.NONE: (),
    Level.READ: READ_CAPABILITIES,
    Level.FULL: ALL_CAPABILITIES,
}

SENDS: Mapping[str, frozenset[str]] = {
    "runtime:packet": frozenset({"protocol:runtime"}),
    "component:list": frozenset({"protocol:component"}),
    "component:getsource": frozenset({"component:getsource"}),
    "component:source": frozenset({"component:setsource"}),
    "network:start": frozenset({"protocol:network", "network:control"}),
    "network:stop": frozenset({"protocol:network", "network:control"}),
    "network:debug": frozenset({"protocol:network", "network:control"}),
    "network:getstatus": frozenset({"protocol:network", "network:control", "network:status"}),
    "network:edges": frozenset({"protocol:network", "network:data"}),
    "network:persist": frozenset({"network:persist"}),
    "msgflo:observe": frozenset({"protocol:network", "network:data", "network:status"}),
}
"""Which capabilities permit a request; every ``graph:*`` edit needs ``protocol:graph`` and every
``trace:*`` request ``protocol:trace``. ``runtime:getruntime`` needs none."""

_NETWORK_DATA = frozenset({"protocol:network", "network:data"})
_NETWORK_STATUS = frozenset({"protocol:network", "network:control", "network:status"})
RECEIVES: Mapping[str, frozenset[str]] = {
    "runtime:ports": frozenset({"protocol:runtime"}),
    "runtime:packet": frozenset({"protocol:runtime"}),
    "component:component": frozenset(
        {"protocol:component", "component:setsource", "component:getsource"}
    ),
    "network:started": _NETWORK_STATUS,
    "network:stopped": _NETWORK_STATUS,
    "network:status": _NETWORK_STATUS,
    "network:data": _NETWORK_DATA,
    "network:output": _NETWORK_DATA,
    "network:processerror": _NETWORK_DATA,
    "network:icon": _NETWORK_DATA,
}
"""Which capabilities let a client follow a broadcast; ``graph:*`` changes go to clients with
``protocol:graph`` or ``graph:readonly``."""


def may_send(capabilities: frozenset[str], protocol: str, command: str) -> bool:
    if (protocol, command) == ("runtime", "getruntime"):
        return True
    if protocol == "graph":
        return "protocol:graph" in capabilities
    if protocol == "trace":
        return "protocol:trace" in capabilities
    needed = SENDS.get(f"{protocol}:{command}")
    return needed is not None and bool(needed & capabilities)


def may_receive(capabilities: frozenset[str], protocol: str, command: str) -> bool:
    if command == "error" or (protocol == "runtime" and command == "runtime"):
        return True
    if protocol == "graph":
        return bool({"protocol:graph", "graph:readonly"} & capabilities)
    if protocol == "trace":
        return "protocol:trace" in capabilities
    needed = RECEIVES.get(f"{protocol}:{command}")
    return needed is None or bool(needed & capabilities)


@dataclass
class Access:
    """Secrets to levels, and the level of a client that gives none."""

    secrets: dict[str, Level] = field(default_factory=dict)
    default: Level = Level.FULL
    generated: str | None = None
    """The secret made up because nothing was configured for a runtime others can reach."""

    @classmethod
    def configure(
        cls,
        secret: str | None,
        secrets_file: Path | None,
        default: str | None,
        host: str = "localhost",
    ) -> Access:
        """Without any secret everyone has full access, as with the original, on loopback;
        listening on ``host`` beyond it, a secret is generated unless ``default`` was chosen
        explicitly. With a secret, a client without one gets nothing unless ``default`` says
        otherwise."""
        secrets = load_secrets(secrets_file) if secrets_file else {}
        if secret:
            secrets[secret] = Level.FULL
        generated = None
        if not secrets and default is None and beyond_loopback(host):
            generated = tokens.token_urlsafe(18)
            secrets[generated] = Level.FULL
        level = (Level.NONE if secrets else Level.FULL) if default is None else Level(default)
        return cls(secrets, level, generated)

    def open_to(self, host: str) -> bool:
        """Anyone who can reach ``host`` may do everything without a secret."""
        return self.default is Level.FULL and beyond_loopback(host)

    def level(self, secret: str | None) -> Level | None:
        """The level a secret grants; ``None`` for a secret that is not known."""
        if not secret:
            return self.default
        return self.secrets.get(secret)

    @staticmethod
    def capabilities(level: Level) -> frozenset[str]:
        return frozenset(CAPABILITIES[level])


def beyond_loopback(host: str) -> bool:
    """Whether listening on ``host`` lets other machines connect; a name other than
    ``localhost`` may resolve anywhere, so it counts as reachable."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def load_secrets(path: Path) -> dict[str, Level]:
    """A YAML (or JSON) mapping of secret to level (``read`` or ``full``)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AccessError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise AccessError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, Mapping) or not raw:
        raise AccessError(f"{path}: expected a mapping of secret to level (read or full)")
    secrets: dict[str, Level] = {}
    for index, (secret, level) in enumerate(raw.items(), start=1):
        if not isinstance(secret, str) or not secret:
            raise AccessError(f"{path}: entry {index}: the secret must be a non-empty string")
        if level not in (Level.READ.value, Level.FULL.value):
            raise AccessError(
                f"{path}: entry {index}: level must be 'read' or 'full', not {level!r}"
            )
        secrets[secret] = Level(level)
    return secrets
