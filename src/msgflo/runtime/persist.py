"""Writing the main graph back to the file it was loaded from: on ``network:persist``, and
soon after every edit when msgflo runs with auto-save."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from msgflo.graph import Graph, GraphError, save_graph
from msgflo.runtime.protocol.messages import ProtocolError


class MainGraphFile:
    """The main graph's file, if msgflo was started with one. ``main_graph`` gives, at each
    save, a copy of the graph as it is to be written: clients may change which graph is main,
    and the runtime knows which metadata is live state not to be saved."""

    def __init__(self, path: Path | None, auto_save: bool, main_graph: Callable[[], Graph]) -> None:
        self.path = path
        self.auto_save = auto_save
        self._main_graph = main_graph
        self._task: asyncio.Task[None] | None = None

    def edited(self) -> None:
        """The main graph was edited (live state such as instance counts is not an edit)."""
        if not self.auto_save or self.path is None:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._save_soon())

    async def _save_soon(self) -> None:
        """Changes arrive in bursts (a node removal is several events): save once after."""
        await asyncio.sleep(0)
        with contextlib.suppress(GraphError, OSError):
            self.save()

    def save(self) -> Path:
        """Write the main graph in the file's own format, atomically (a crash mid-write leaves
        the previous file)."""
        path = self.path
        if path is None:
            raise ProtocolError("no graph file to save to (start msgflo with --graph)")
        graph = self._main_graph()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
        os.close(fd)
        try:
            save_graph(graph, tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    def stop(self) -> asyncio.Task[None] | None:
        """Cancel a pending save; the caller awaits the task returned."""
        if self._task is not None:
            self._task.cancel()
        return self._task
