"""Our FBP runtime (coordinator and protocol server) inside the current process, for tools and
tests that drive a runtime over the protocol without starting one as a separate program."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from msgflo.broker import configured_broker, embedded_broker
from msgflo.coordinator import Coordinator, CoordinatorOptions
from msgflo.library import Library
from msgflo.runtime import Access, Runtime, RuntimeOptions, serve
from msgflo.transport import get_broker


@contextlib.asynccontextmanager
async def broker_for_children(explicit: str | None = None) -> AsyncIterator[str]:
    """The configured broker, else an embedded one: participants started as child processes
    need a broker they can reach, which ``memory://`` is not."""
    url = configured_broker(explicit)
    if url is not None:
        yield url
        return
    async with embedded_broker() as embedded:
        yield embedded


@contextlib.asynccontextmanager
async def in_process_runtime(
    library: Library, broker: str | None = None, *, secret: str | None = None
) -> AsyncIterator[str]:
    """Run a runtime for the block on a free local port; yields its ``ws://`` address."""
    async with broker_for_children(broker) as url:
        coordinator = Coordinator(get_broker(url), library, CoordinatorOptions(broker_url=url))
        options = RuntimeOptions(
            id=str(uuid.uuid4()),
            label="msgflo (in-process)",
            access=Access.configure(secret, None, None),
            graph_file=None,
            auto_save=False,
            namespace=library.namespace,
        )
        runtime = Runtime(coordinator, library, options)
        try:
            await coordinator.start()
            async with serve(runtime, "127.0.0.1", 0) as endpoint:
                yield f"ws://127.0.0.1:{endpoint.port}"
        finally:
            await runtime.close()
            await coordinator.stop()


def load_library(config: Path | None, componentdirs: list[str]) -> Library:
    return Library.load(config, componentdirs or None, root=Path.cwd())
