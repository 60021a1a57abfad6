"""Upstart jobs: one ``.conf`` per role, started and stopped with a job for the network.

The network job has no process of its own (an abstract job): ``start NETWORK`` brings every
participant up, ``stop NETWORK`` takes them down.  Upstart has no environment files, so each
job sources ``/etc/default/NETWORK`` (the Debian convention) in a shell before exec'ing the
participant; ``respawn`` restarts a participant that dies, within a limit so that one which
cannot start does not spin.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from msgflo.deploy.roles import GeneratedFile, Network, Role, executable_argv

RESPAWN_LIMIT = (10, 60)
"""At most this many respawns within this many seconds."""


@dataclass(frozen=True)
class UpstartOptions:
    workdir: Path
    env_file: Path | None = None
    """Default: ``/etc/default/NETWORK``."""
    bindir: Path | None = None
    user: str | None = None
    broker: str = "amqp://localhost"


def job_name(network: Network, role: Role) -> str:
    return f"{network.name}-{role.name}"


def _role_job(network: Network, role: Role, options: UpstartOptions, env_file: Path) -> str:
    argv = executable_argv(role, options.workdir, options.bindir)
    env = shlex.quote(str(env_file))
    lines = [
        f'description "msgflo participant {role.name} ({role.component}) of {network.name}"',
        "",
        f"start on started {network.name}",
        f"stop on stopping {network.name}",
        "",
        "respawn",
        f"respawn limit {RESPAWN_LIMIT[0]} {RESPAWN_LIMIT[1]}",
        "console log",
        f"chdir {options.workdir}",
    ]
    if options.user:
        lines.append(f"setuid {options.user}")
    lines += [
        "",
        "script",
        "  set -a",
        f"  [ -r {env} ] && . {env}",
        f"  exec {shlex.join(argv)}",
        "end script",
    ]
    return "\n".join(lines) + "\n"


def generate(network: Network, options: UpstartOptions) -> list[GeneratedFile]:
    env_file = options.env_file or Path("/etc/default") / network.name
    files = [
        GeneratedFile(
            f"{job_name(network, role)}.conf", _role_job(network, role, options, env_file)
        )
        for role in network.roles
    ]
    files.append(
        GeneratedFile(
            f"{network.name}.conf",
            f'description "msgflo network {network.name}"\n\n'
            "start on (local-filesystems and net-device-up IFACE!=lo)\n"
            "stop on runlevel [!2345]\n",
        )
    )
    files.append(GeneratedFile(f"{network.name}.env", f"MSGFLO_BROKER={options.broker}\n"))
    return files
