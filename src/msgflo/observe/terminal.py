"""The running network as a terminal table, read from a runtime's ``GET /api/network``.

A runtime without that endpoint (an older msgflo) still answers ``GET /api`` with its nodes and
their queues: the view then shows those with rates and depths unknown.  Both answers follow the
runtime's access control, hence ``--secret``.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from rich.console import Group
from rich.table import Table

from msgflo.runtime.api import SECRET_HEADER

TIMEOUT = 10.0


class SnapshotError(Exception):
    """The runtime cannot be read; one line naming its address and why."""


def http_base(runtime: str) -> str:
    """``ws://host:port`` (as FBP clients are given it) to ``http://host:port``."""
    parts = urlsplit(runtime if "://" in runtime else f"ws://{runtime}")
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc:
        raise SnapshotError(f"{runtime!r} is not a runtime address (e.g. ws://127.0.0.1:3569)")
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def from_listing(listing: dict[str, Any]) -> dict[str, Any]:
    """``GET /api``'s answer in the shape of ``/api/network``, figures unknown (``null``)."""
    nodes = []
    for node in listing.get("nodes") or []:
        nodes.append(
            {
                "name": node.get("name"),
                "component": node.get("component"),
                "instances": node.get("instances"),
                "inports": [
                    {"id": port, "queue": queue, "rate": None, "depth": None}
                    for port, queue in (node.get("inports") or {}).items()
                ],
                "outports": [
                    {"id": port, "queue": queue, "rate": None}
                    for port, queue in (node.get("outports") or {}).items()
                ],
            }
        )
    return {
        "time": time.time(),
        "graph": listing.get("graph"),
        "broker": listing.get("broker"),
        "source": "/api",
        "nodes": nodes,
        "edges": None,
    }


async def _get(session: aiohttp.ClientSession, url: str, secret: str | None) -> Any:
    headers = {SECRET_HEADER: secret} if secret else {}
    async with session.get(url, headers=headers) as response:
        if response.status == 404 or response.content_type != "application/json":
            return None  # an older runtime answers its HTML page for any other path
        body = await response.json(content_type=None)
        if response.status != 200:
            why = body.get("error") if isinstance(body, dict) else None
            raise SnapshotError(f"{url}: HTTP {response.status}: {why or response.reason}")
        return body


async def fetch(base: str, secret: str | None = None) -> dict[str, Any]:
    """One snapshot; ``/api/network`` where the runtime has it, else ``/api`` (see above)."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
            network = await _get(session, f"{base}/api/network", secret)
            if network is not None:
                return dict(network)
            listing = await _get(session, f"{base}/api", secret)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise SnapshotError(f"{base}: cannot be read: {exc or type(exc).__name__}") from None
    if listing is None:
        raise SnapshotError(f"{base}: not a msgflo runtime (no /api)")
    return from_listing(listing)


def _number(value: Any, unit: str = "") -> str:
    if value is None:
        return "?"
    if isinstance(value, float):
        return f"{value:.1f}{unit}"
    return f"{value}{unit}"


def _age(value: Any, now: float) -> str:
    if isinstance(value, int | float):
        return f"{max(0.0, now - value):.0f}s ago"
    return "?" if value is None else str(value)


def _end(end: Any) -> str:
    end = end or {}
    return f"{end.get('node', '?')}.{end.get('port', '?')}"


def render(snapshot: dict[str, Any], problem: str | None = None) -> Group:
    """An edge table (rate, depth, state, flags) and a node table (instances, restarts,
    last seen, errors, queues)."""
    stamp = snapshot.get("time")
    now = float(stamp) if isinstance(stamp, int | float) else time.time()
    title = f"graph {snapshot.get('graph') or '?'} on {snapshot.get('broker') or '?'}"
    parts: list[Any] = []
    edges = snapshot.get("edges")
    if edges is None:
        parts.append(f"{title}: edges and rates unknown (the runtime has no /api/network)")
    else:
        table = Table(title=title, title_justify="left")
        for column in ("edge", "state", "rate/s", "depth", "flags"):
            table.add_column(column, justify="right" if column in ("rate/s", "depth") else "left")
        for edge in edges:
            flags = [name for name in ("stalled", "abnormal") if edge.get(name)]
            if edge.get("error"):
                flags.append(f"error: {edge['error']}")
            state = str(edge.get("state", "?"))
            style = "red" if flags or state == "error" else "yellow" if state == "pending" else ""
            table.add_row(
                f"{_end(edge.get('src'))} -> {_end(edge.get('tgt'))}",
                state,
                _number(edge.get("rate")),
                _number(edge.get("depth")),
                ", ".join(flags),
                style=style,
            )
        parts.append(table)
    nodes = Table(title=None if edges is None else "nodes", title_justify="left")
    for column in ("node", "component", "instances", "restarts", "last seen", "errors", "queues"):
        nodes.add_column(column)
    for node in snapshot.get("nodes") or []:
        queues = [
            f"{port.get('id')}={port.get('queue')} ({_number(port.get('rate'), '/s')})"
            for port in (node.get("inports") or []) + (node.get("outports") or [])
        ]
        nodes.add_row(
            str(node.get("name")),
            str(node.get("component")),
            _number(node.get("instances")),
            _number(node.get("restarts")),
            _age(node.get("last_seen"), now) + (" (stale)" if node.get("stale") else ""),
            _number(node.get("errors")),
            ", ".join(queues),
            style="red" if node.get("stale") else "",
        )
    parts.append(nodes)
    if problem:
        parts.append(f"[red]{problem}[/red]")
    return Group(*parts)
