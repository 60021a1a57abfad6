"""JSON Schemas on ports: loaded once when a participant starts, compiled, checked per message.

A port's ``schema`` is a schema object (inline), a path to a JSON file (relative to the working
directory), or an ``http(s)://``/``file://`` URL.  Files and URLs are read once, at start, with
every ``$ref`` they reach; a schema that cannot be read or does not compile stops the start with
one line naming the port.  Validators are compiled by jsonschema-rs (Rust): a check of a small
message costs under a microsecond (docs/performance.md).  This is the one module that touches
jsonschema-rs.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
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
    """One schema document: the root, and each remote ``$ref`` (jsonschema-rs asks).  urllib's
    HTTP client is imported here, by the few participants whose schemas live at a URL."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:
        return orjson.loads(response.read())


def _place(instance_path: list[str | int]) -> str:
    """``["items", 1]`` → ``$.items[1]``."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in instance_path)


def _compile(schema: Any, base: str | None) -> Callable[[Any], Invalid | None]:
    validator = jsonschema_rs.validator_for(schema, retriever=_fetch, base_uri=base)
    is_valid = validator.is_valid

    def check(data: Any) -> Invalid | None:
        if is_valid(data):  # the common case: no error object is built
            return None
        try:
            validator.validate(data)
        except jsonschema_rs.ValidationError as exc:
            where = _place(list(exc.instance_path))
            return Invalid(where, f"{where}: {exc.message}")
        return None

    return check


def _load(spec: Any) -> tuple[Any, Any, str | None]:
    """``(announced, schema document, its URL)`` of a port's ``schema`` field; blocking."""
    if isinstance(spec, Mapping | bool):
        return spec, spec, None
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
    return (document if announced is None else announced), document, url


def _prepare(spec: Any) -> PortSchema:
    announced, document, url = _load(spec)
    return PortSchema(announced, _compile(document, url))


async def load_port_schema(role: str, kind: str, port: str, spec: Any) -> PortSchema:
    """Read and compile one port's schema off the event loop; :class:`SchemaError` if not."""
    try:
        return await asyncio.get_running_loop().run_in_executor(None, _prepare, spec)
    except jsonschema_rs.ValidationError as exc:  # the schema breaks its meta-schema
        cause = f"does not compile: {exc.message}"
    except jsonschema_rs.ReferencingError as exc:
        cause = f"cannot be read: {exc}"
    except (OSError, ValueError) as exc:  # URLError and JSON errors are among these
        cause = f"cannot be read: {exc}"
    source = spec if isinstance(spec, str) else "(inline)"
    line = " ".join(f"{role}: {kind} {port!r}: schema {source} {cause}".split())
    raise SchemaError(line)
