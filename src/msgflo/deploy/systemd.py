"""systemd units: a service per role, a target that starts and stops the network as one.

Each service restarts on failure and reads the broker URL from an ``EnvironmentFile`` (kept
out of the units, which are world-readable).  With a watchdog queue, a ``msgflo-monitor``
unit watches for the periodic messages; when it fails, ``OnFailure=`` runs a one-shot unit
that restarts the whole target, and with it every participant (``PartOf=``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from msgflo.deploy.roles import GeneratedFile, Network, Role, executable_argv

_UNIT_SAFE = re.compile(r"[A-Za-z0-9:_.\-]")
_WORD_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./$-]+")
SYSTEMCTL = "/bin/systemctl"
MONITOR = "msgflo-monitor"


@dataclass(frozen=True)
class Watchdog:
    """``msgflo-monitor --queue QUEUE --expect-periodic PERIOD --fail-missed MISSED``."""

    queue: str
    period: str = "1s"
    missed: int = 3


@dataclass(frozen=True)
class SystemdOptions:
    workdir: Path
    env_file: Path | None = None
    """Default: ``/etc/msgflo/NETWORK.env``."""
    bindir: Path | None = None
    user: str | None = None
    broker: str = "amqp://localhost"
    watchdog: Watchdog | None = None


def unit_name(name: str) -> str:
    """``name`` with the characters unit names cannot hold escaped as systemd-escape does."""
    escaped = "".join(
        ch if _UNIT_SAFE.fullmatch(ch) else "".join(f"\\x{b:02x}" for b in ch.encode())
        for ch in name
    )
    return "\\x2e" + escaped[1:] if escaped.startswith(".") else escaped


def exec_word(word: str) -> str:
    """One word of an ``Exec*=`` line: quoted when it must be, ``%`` and ``$`` doubled so
    that systemd passes them on instead of expanding specifiers and variables."""
    if not (word and _WORD_SAFE.fullmatch(word)):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word.replace("%", "%%").replace("$", "$$")


def exec_line(argv: list[str]) -> str:
    return " ".join(exec_word(word) for word in argv)


def _ini(sections: dict[str, list[tuple[str, str]]]) -> str:
    blocks = []
    for section, entries in sections.items():
        lines = [f"[{section}]"] + [f"{key}={value}" for key, value in entries]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _service(
    network: Network, description: str, argv: list[str], options: SystemdOptions, env_file: Path
) -> dict[str, list[tuple[str, str]]]:
    target = unit_name(network.name) + ".target"
    service = [
        ("Type", "simple"),
        ("EnvironmentFile", str(env_file)),
        ("WorkingDirectory", str(options.workdir)),
        ("ExecStart", exec_line(argv)),
        ("Restart", "on-failure"),
        ("RestartSec", "2"),
    ]
    if options.user:
        service.append(("User", options.user))
    return {
        "Unit": [
            ("Description", description),
            ("PartOf", target),
            ("After", "network-online.target"),
            ("Wants", "network-online.target"),
        ],
        "Service": service,
        "Install": [("WantedBy", target)],
    }


def role_unit(network: Network, role: Role) -> str:
    return unit_name(f"{network.name}-{role.name}") + ".service"


def generate(network: Network, options: SystemdOptions) -> list[GeneratedFile]:
    env_file = options.env_file or Path("/etc/msgflo") / f"{network.name}.env"
    target = unit_name(network.name) + ".target"
    files = []
    units = []
    for role in network.roles:
        argv = executable_argv(role, options.workdir, options.bindir)
        description = f"msgflo participant {role.name} ({role.component}) of {network.name}"
        units.append(role_unit(network, role))
        files.append(
            GeneratedFile(units[-1], _ini(_service(network, description, argv, options, env_file)))
        )
    if options.watchdog is not None:
        watchdog = options.watchdog
        program = Role(MONITOR, MONITOR, MONITOR, (MONITOR,), ())
        argv = [
            *executable_argv(program, options.workdir, options.bindir),
            *("--queue", watchdog.queue, "--expect-periodic", watchdog.period),
            *("--fail-missed", str(watchdog.missed)),
        ]
        restart = unit_name(f"{network.name}-restart") + ".service"
        monitor = _service(
            network,
            f"msgflo watchdog of {network.name} on {watchdog.queue}",
            argv,
            options,
            env_file,
        )
        monitor["Unit"].append(("OnFailure", restart))
        # A restart would hide the failure from OnFailure=, which only sees the failed state.
        monitor["Service"] = [
            e for e in monitor["Service"] if e[0] not in ("Restart", "RestartSec")
        ]
        units.append(unit_name(f"{network.name}-monitor") + ".service")
        files.append(GeneratedFile(units[-1], _ini(monitor)))
        files.append(
            GeneratedFile(
                restart,
                _ini(
                    {
                        "Unit": [("Description", f"Restart msgflo network {network.name}")],
                        "Service": [
                            ("Type", "oneshot"),
                            ("ExecStart", exec_line([SYSTEMCTL, "restart", target])),
                        ],
                    }
                ),
            )
        )
    files.append(
        GeneratedFile(
            target,
            _ini(
                {
                    "Unit": [
                        ("Description", f"msgflo network {network.name}"),
                        ("Wants", " ".join(units)),
                    ],
                    "Install": [("WantedBy", "multi-user.target")],
                }
            ),
        )
    )
    files.append(GeneratedFile(f"{network.name}.env", f"MSGFLO_BROKER={options.broker}\n"))
    return files
