"""Reading a RabbitMQ's bindings through its management HTTP API.

AMQP 0-9-1 has no command that lists bindings, so ``msgflo-setup --check`` asks the management
plugin (``rabbitmq-plugins enable rabbitmq_management``).  Its address is the broker URL's
``management`` option (``amqp://u:p@host/?management=http://host:15672``); by default
``http://<broker host>:15672`` with the broker URL's credentials and virtual host.

The broker's exchange-to-queue and exchange-to-exchange links are turned back into the bindings
:class:`~msgflo.transport.amqp.AmqpBroker` makes (see its ``_binding_ops``): a pubsub binding is
queue ``tgt`` bound to the fanout exchange ``src``; a round-robin one is exchange ``out-<src>``
bound to ``src`` and queue ``tgt`` bound to ``out-<src>``; a dead-letter half is queue
``deadletter`` bound to exchange ``dead-<tgt>``.  Each inport's own exchange-to-queue link (same
name), RabbitMQ's ``amq.*`` exchanges and private queues (``.msgflo-...``, ``amq.gen-...``) are
topology, not bindings, and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp

from msgflo.transport.base import Address, Binding, BindingType, TransportError

DEFAULT_PORT = 15672
TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Links:
    """What the management API lists: ``(exchange, queue)`` and ``(source, destination)``
    exchange pairs."""

    to_queues: frozenset[tuple[str, str]]
    to_exchanges: frozenset[tuple[str, str]]


def management_url(address: Address) -> str:
    """The management API's base URL for a broker URL (see the module docstring)."""
    given = address.options.get("management")
    if given:
        return given.rstrip("/")
    return f"http://{address.host or '127.0.0.1'}:{DEFAULT_PORT}"


def _vhost(address: Address) -> str:
    path = unquote(address.path[1:]) if address.path.startswith("/") else ""
    return path or "/"


def _private(name: str) -> bool:
    return not name or name.startswith((".", "amq."))


async def read_links(address: Address) -> Links:
    """The links of the broker URL's virtual host; a :class:`TransportError` in one line when
    the management API cannot be reached or refuses."""
    base = management_url(address)
    url = f"{base}/api/bindings/{quote(_vhost(address), safe='')}"
    given = urlsplit(base)
    user = given.username or address.username or "guest"
    password = given.password or address.password or "guest"
    shown = f"{given.scheme}://{given.hostname}:{given.port or DEFAULT_PORT}"
    try:
        async with (
            aiohttp.ClientSession(
                auth=aiohttp.BasicAuth(user, password),
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            ) as session,
            session.get(url) as response,
        ):
            if response.status in (401, 403):
                raise TransportError(
                    f"RabbitMQ management API at {shown} refused user {user!r} "
                    f"(HTTP {response.status}; it needs the 'management' tag)"
                )
            if response.status != 200:
                raise TransportError(
                    f"RabbitMQ management API at {shown} answered HTTP {response.status}"
                )
            rows: list[dict[str, Any]] = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise TransportError(
            f"RabbitMQ management API at {shown} cannot be read ({type(exc).__name__}: {exc}); "
            "enable it with 'rabbitmq-plugins enable rabbitmq_management' or give its address "
            "as the broker URL's ?management=http://host:15672"
        ) from None
    to_queues, to_exchanges = set(), set()
    for row in rows:
        source, target = str(row.get("source", "")), str(row.get("destination", ""))
        if _private(source) or _private(target):
            continue
        if row.get("destination_type") == "queue":
            to_queues.add((source, target))
        else:
            to_exchanges.add((source, target))
    return Links(frozenset(to_queues), frozenset(to_exchanges))


def bindings_from_links(links: Links) -> list[Binding]:
    """The msgflo bindings those links make up (see the module docstring), sorted."""
    found: set[Binding] = set()
    for exchange, queue in links.to_queues:
        if exchange == queue:
            continue
        if exchange.startswith("out-") and (exchange[4:], exchange) in links.to_exchanges:
            found.add(Binding(exchange[4:], queue, BindingType.ROUNDROBIN))
        elif exchange.startswith("dead-"):
            found.add(Binding("", exchange[5:], BindingType.ROUNDROBIN, deadletter=queue))
        else:
            found.add(Binding(exchange, queue))
    return sorted(found, key=lambda b: (b.src, b.tgt, b.type.value, b.deadletter or ""))
