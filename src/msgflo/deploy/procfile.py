"""Heroku/foreman Procfiles: one ``role: command`` line per role.

The text is the original's, byte for byte: the role lines, a newline, the ``--include`` lines
(so without includes the file ends in an empty line).  Heroku routes HTTP only to a ``web``
process, so a Procfile without one is refused unless the caller says the app has none.
"""

from __future__ import annotations

from collections.abc import Sequence

from msgflo.deploy.roles import DeployError, Role

WEB = "web"


def process_types(lines: Sequence[str]) -> list[str]:
    return [line.split(":", 1)[0].strip() for line in lines if ":" in line]


def procfile(
    roles: Sequence[Role], include: Sequence[str] = (), *, require_web: bool = True
) -> str:
    lines = [f"{role.name}: {role.command}" for role in roles]
    if require_web and WEB not in process_types([*lines, *include]):
        raise DeployError(
            "no 'web' process: Heroku needs one (add a 'web' role, --include 'web: COMMAND', "
            "or --no-web for an app without one)"
        )
    return "\n".join(lines) + "\n" + "\n".join(include) + "\n"
