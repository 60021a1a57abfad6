"""The participant's side: publish its figures every few seconds on the figures channel.

A report is one small message per interval per participant, whatever the traffic, so its cost
does not grow with throughput.  Failing to send one is logged at debug level and retried at the
next interval: figures are never worth a participant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from msgflo.observe.figures import FIGURES_CHANNEL, ParticipantFigures
from msgflo.transport import Client, QueueKind, encode

log = logging.getLogger(__name__)


class Reporter:
    def __init__(
        self,
        client: Client,
        definition: Mapping[str, Any],
        figures: ParticipantFigures,
        interval: float,
    ) -> None:
        self.client = client
        self.definition = definition
        self.figures = figures
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def send(self) -> None:
        held = [self.client.held(c.queue) for c in self.figures.inports.values()]
        report = self.figures.report(self.definition, time.time(), self.interval, held)
        await self.client.send_raw(QueueKind.OUT, FIGURES_CHANNEL, encode(report))

    async def _run(self) -> None:
        while True:
            try:
                await self.send()
            except Exception as exc:  # the next interval tries again
                log.debug("%s: figures not sent: %s", self.definition.get("role"), exc)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
