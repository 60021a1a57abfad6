"""JSON Schemas on ports: loaded once when a participant starts, compiled, checked per message.

A port's ``schema`` is a schema object (inline), a path to a JSON file (relative to the working
directory), or an ``http(s)://``/``file://`` URL.  Files and URLs are read once, at start, with
every ``$ref`` they reach; a schema that cannot be read or does not compile stops the start with
one line naming the port.  Validators are compiled to Python by fastjsonschema: a check costs a
few microseconds (docs/performance.md).  This is the one module that touches fastjsonschema.
"""

from __future__ import annotations

import asyncio
import copy
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson

from msgflo.errors import MsgfloError

FETCH_TIMEOUT = 10.0
"""Seconds to fetch one schema document over HTTP."""

URL_SCHEMES = ("http", "https", "file")


class SchemaError(MsgfloError):
    """A port's schema that cannot be read or compiled: names the role, port and cause."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why data does not match: the failing place (``$.items[1]``) and the schema's rule."""

    path: str
    error: str


@dataclass(frozen=True, slots=True)
class PortSchema:
    """``announced`` is what discovery carries (the URL as given, otherwise the schema)."""

    announced: Any
    check: Callable[[Any], Invalid | None]


def _fetch(url: str) -> Any:
    """One schema document; fastjsonschema calls this for the root and each remote ``$ref``."""
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:
        return orjson.loads(response.read())


def _compile(schema: Any) -> Callable[[Any], Invalid | None]:
    handlers = {scheme: _fetch for scheme in URL_SCHEMES}
    validate = fastjsonschema.compile(schema, handlers=handlers, use_default=False)

    def check(data: Any) -> Invalid | None:
        try:
            validate(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            where = "$" + (exc.name or "data")[len("data") :]
            return Invalid(where, exc.message.replace(exc.name or "data", where, 1))
        return None

    return check


def _load(spec: Any) -> tuple[Any, Any]:
    """``(announced, schema document)`` of a port's ``schema`` field; blocking (files, URLs)."""
    if isinstance(spec, Mapping | bool):
        return spec, spec
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"must be a schema object, a file or a URL, not {spec!r}")
    if urllib.parse.urlsplit(spec).scheme in URL_SCHEMES:
        url = spec
        announced: Any = spec
    else:
        path = Path(spec).resolve()
        url = path.as_uri()
        announced = None
    document = _fetch(url)
    if isinstance(document, dict):
        document.setdefault("$id", url)  # relative $refs resolve against where it came from
    return (document if announced is None else announced), document


def _prepare(spec: Any) -> PortSchema:
    announced, document = _load(spec)
    return PortSchema(announced, _compile(copy.deepcopy(document)))  # compiling rewrites $refs


async def load_port_schema(role: str, kind: str, port: str, spec: Any) -> PortSchema:
    """Read and compile one port's schema off the event loop; :class:`SchemaError` if not."""
    try:
        return await asyncio.get_running_loop().run_in_executor(None, _prepare, spec)
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        cause = f"does not compile: {exc}"
    except (OSError, ValueError) as exc:  # URLError and JSON errors are among these
        cause = f"cannot be read: {exc}"
    source = spec if isinstance(spec, str) else "(inline)"
    raise SchemaError(f"{role}: {kind} {port!r}: schema {source} {cause}".replace("\n", " "))
