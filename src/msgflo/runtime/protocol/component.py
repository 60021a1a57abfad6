"""``component``: list the library, read and write component sources."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import yaml

from msgflo.library import LibraryError, extension_for
from msgflo.runtime.components import component_payload
from msgflo.runtime.protocol.messages import ProtocolError
from msgflo.runtime.request import Request

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""A component name that can only ever be a file name inside the component directory."""


async def list_components(req: Request) -> None:
    """Also asks the network to announce itself (:meth:`Coordinator.request_discovery`): a
    client that lists components is about to show what runs, and participants that were running
    before the coordinator need not wait for their heartbeat."""
    await req.runtime.coordinator.request_discovery()
    library = req.runtime.library
    names = library.names()
    for name in names:
        await req.reply("component", component_payload(library.components[name], library))
    await req.reply("componentsready", len(names))


def split_name(name: str) -> tuple[str, str]:
    library, _, base = name.rpartition("/")
    return library, base


async def getsource(req: Request) -> None:
    """A graph as fbp-graph JSON, a component's file, or what a participant of a component
    without a file announced, as a YAML declaration (which ``component:source`` accepts back)."""
    rt = req.runtime
    name = req.text("name")
    graph = rt.graphs.get(name)
    if graph is None and name == split_name(rt.main)[1]:
        graph = rt.graphs.get(rt.main)
        name = rt.main
    if graph is not None:
        library, base = split_name(name)
        code = orjson.dumps(graph.to_json(), option=orjson.OPT_INDENT_2).decode("utf-8")
        await req.reply(
            "source", {"name": base, "library": library or None, "language": "json", "code": code}
        )
        return
    found = rt.library.find(name)
    if found is None:
        raise ProtocolError(f"component:getsource: unknown component {name!r}")
    library, base = split_name(found.name)
    if found.path is not None:
        path = rt.library.root / found.path
        try:
            code = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"component:getsource: cannot read {found.path}: {exc}") from exc
        language = found.language or found.path.suffix.lstrip(".")
    else:
        definition = {k: v for k, v in (found.definition or {}).items() if k not in ("id", "role")}
        code = yaml.safe_dump(definition or {"component": found.name}, sort_keys=False)
        language = "yaml"
    await req.reply(
        "source", {"name": base, "library": library or None, "language": language, "code": code}
    )


async def source(req: Request) -> None:
    """Write the code into the first component directory; the new component is announced to
    every client."""
    rt = req.runtime
    name, language, code = req.text("name"), req.text("language"), req.payload.get("code")
    if not isinstance(code, str):
        raise ProtocolError("component:source: 'code' must be a string")
    base = split_name(name)[1]
    if not NAME.fullmatch(base):
        raise ProtocolError(f"component:source: {base!r} is not a usable component name")
    if not rt.library.componentdirs:
        raise ProtocolError("component:source: no component directory (start with --componentdir)")
    try:
        extension = extension_for(language)
    except LibraryError as exc:
        raise ProtocolError(f"component:source: {exc}") from exc
    relative = rt.library.componentdirs[0] / f"{base}{extension}"
    write_atomically(rt.library.root / relative, code)
    component = rt.library.add_file(relative)
    if component is None:
        raise ProtocolError(f"component:source: no handler runs {extension} files")
    await req.broadcast("component", component_payload(component, rt.library))


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


COMMANDS: dict[str, Callable[[Request], Awaitable[None]]] = {
    "list": list_components,
    "getsource": getsource,
    "source": source,
}
UNLOCKED: frozenset[str] = frozenset()
