"""A project directory for the FBP tools to drive our runtime: `core/Repeat` and `core/Drop`
as small participants, and one fbp-config.json that serves both fbp-test (name, command, port,
collection) and msgflo (its `msgflo` key sets the component namespace `core`)."""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
from pathlib import Path

NODE = Path(__file__).parent / "node"
BIN = NODE / "node_modules" / ".bin"
VENV_BIN = Path(sys.executable).parent

REPEAT = '''import msgflo


class Repeat(msgflo.Participant):
    """Sends on what it gets."""

    component = "core/Repeat"
    icon = "forward"
    inports = {"in": "all"}
    outports = {"out": "all"}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        await self.send("out", msg.data)
'''

DROP = '''import msgflo


class Drop(msgflo.Participant):
    """Takes everything and sends nothing."""

    component = "core/Drop"
    icon = "trash-o"
    inports = {"in": "all"}
    outports = {}

    async def process(self, port: str, msg: msgflo.Message) -> None:
        return None
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment() -> dict[str, str]:
    """Our console scripts first on PATH (the library's commands name them), no stray broker."""
    env = {k: v for k, v in os.environ.items() if k not in ("MSGFLO_BROKER", "CLOUDAMQP_URL")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MSGFLO_DISCOVERY_PERIOD"] = "2"
    return env


def runtime_command(project: Path, port: int, *extra: str) -> str:
    """A shell command that becomes the runtime (`exec`), as the tools' `--command` wants."""
    argv = [
        str(VENV_BIN / "msgflo"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--library",
        str(project / "fbp-config.json"),
        "--componentdir",
        str(project / "participants"),
        "--forward",
        "",
        *extra,
    ]
    return "exec " + shlex.join(argv)


def make_project(project: Path, port: int, *extra: str) -> Path:
    """Write the participants and fbp-config.json into `project`; returns the config file."""
    participants = project / "participants"
    participants.mkdir(parents=True, exist_ok=True)
    (participants / "Repeat.py").write_text(REPEAT)
    (participants / "Drop.py").write_text(DROP)
    config = {
        "name": "msgflo",
        "command": runtime_command(project, port, *extra),
        "host": "127.0.0.1",
        "port": port,
        "collection": "core",
        "version": "0.7",
        "msgflo": {"namespace": "core"},
    }
    path = project / "fbp-config.json"
    path.write_text(json.dumps(config, indent=2))
    return path
