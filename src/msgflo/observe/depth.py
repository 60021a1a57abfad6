"""Queue depth from the broker: RabbitMQ's management HTTP API when one is configured (all
queues, with their rates, in one request), else each queue asked through the transport
(:meth:`msgflo.transport.Client.queue_depth`: a passive declare on AMQP, exact on
``memory://``, stream state on NATS JetStream).  A management API that is absent, refuses or
answers nonsense is reported once and left alone for :data:`RETRY_AFTER` seconds; the depth
then comes from the transport, or is unknown.  Nothing here raises.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

from msgflo.transport import Address, Broker, QueueDepth

log = logging.getLogger(__name__)

RETRY_AFTER = 30.0
TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Sample:
    depth: QueueDepth | None
    publish_rate: float | None = None
    """Messages per second arriving at the queue (management API only)."""
    deliver_rate: float | None = None
    """Messages per second taken by consumers (management API only)."""


class DepthSource:
    def __init__(self, broker: Broker, management_url: str | None = None) -> None:
        self.broker = broker
        self.management_url = management_url
        self._retry_at = 0.0
        self._session: aiohttp.ClientSession | None = None
        self.management_error: str | None = None
        """Why the management API is not used right now, for the snapshot and the log."""

    async def poll(self, queues: list[str]) -> dict[str, Sample]:
        if self.management_url and time.monotonic() >= self._retry_at:
            found = await self._management(set(queues))
            if found is not None:
                return found
        results = await asyncio.gather(*(self.broker.queue_depth(q) for q in queues))
        return {q: Sample(d) for q, d in zip(queues, results, strict=True)}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _endpoint(self) -> tuple[str, str]:
        assert self.management_url is not None
        parts = urlsplit(self.management_url)
        broker = Address.parse(self.broker.url)
        user = parts.username or broker.username or "guest"
        password = parts.password or broker.password or "guest"
        vhost = broker.path[1:] if len(broker.path) > 1 else "/"
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        url = f"{base}/api/queues/{quote(vhost, safe='')}"
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return url, f"Basic {token}"

    async def _management(self, wanted: set[str]) -> dict[str, Sample] | None:
        try:
            url, auth = self._endpoint()
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
            params = {"columns": "name,messages_ready,consumers,message_stats"}
            headers = {"Authorization": auth}
            async with self._session.get(url, headers=headers, params=params) as response:
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status} {response.reason}")
                listing = await response.json(content_type=None)
            if not isinstance(listing, list):
                raise ValueError("the answer is not a list of queues")
            found: dict[str, Sample] = {}
            for queue in listing:
                name = queue.get("name") if isinstance(queue, dict) else None
                if name in wanted:
                    stats = queue.get("message_stats") or {}
                    found[name] = Sample(
                        QueueDepth(int(queue.get("messages_ready") or 0), queue.get("consumers")),
                        _rate(stats, "publish_details"),
                        _rate(stats, "deliver_get_details"),
                    )
        except (aiohttp.ClientError, TimeoutError, ValueError, TypeError, AttributeError) as exc:
            where = Address.parse(self.management_url or "").redacted()
            said = f"management API {where}: {exc or type(exc).__name__}"
            if said != self.management_error:
                log.warning("%s; queue depth from the broker protocol instead", said)
            self.management_error = said
            self._retry_at = time.monotonic() + RETRY_AFTER
            return None
        self.management_error = None
        return {q: found.get(q, Sample(None)) for q in wanted}


def _rate(stats: object, key: str) -> float | None:
    details = stats.get(key) if isinstance(stats, dict) else None
    rate = details.get("rate") if isinstance(details, dict) else None
    return float(rate) if isinstance(rate, int | float) else None
